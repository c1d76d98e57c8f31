"""The OPC UA server, read and subscribed to by a real asyncua client over loopback."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError
from pymodbus.client import AsyncModbusTcpClient

from ingest.simulator.opcua_server import NAMESPACE_URI
from ingest.simulator.runner import Simulator
from transactional.plant_file import PlantDefinition

TYPES = {"state": ua.VariantType.Int32, "fault_code": ua.VariantType.UInt16,
         "good_count": ua.VariantType.UInt32, "reject_count": ua.VariantType.UInt32,
         "process_value": ua.VariantType.Double}


class Recorder:
    """A subscription handler keeping every notification with its source timestamp."""

    def __init__(self) -> None:
        self.values: list[tuple[str, object, dt.datetime | None]] = []

    def datachange_notification(self, node: Node, value: object, data: object) -> None:
        monitored = getattr(data, "monitored_item", None)
        source = monitored.Value.SourceTimestamp if monitored is not None else None
        identifier = node.nodeid.Identifier
        self.values.append((str(identifier), value, source))


def test_address_space_types_values_and_timestamps(plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, seed=4, opcua_port=0, modbus_port=None,
                             record=True) as simulator, \
                Client(simulator.opcua_endpoint or "") as client:
            assert await client.get_namespace_index(NAMESPACE_URI) == 2
            objects = {str((await child.read_browse_name()).Name): child
                       for child in await client.nodes.objects.get_children()}
            press = objects["PRESS-1"]
            assert (await press.read_display_name()).Text == "Press 1"
            names = {str((await child.read_browse_name()).Name): child.nodeid.to_string()
                     for child in await press.get_children()}
            assert names == {
                "State": "ns=2;s=PRESS-1.state", "FaultCode": "ns=2;s=PRESS-1.fault_code",
                "GoodCount": "ns=2;s=PRESS-1.good", "RejectCount": "ns=2;s=PRESS-1.reject",
                "Temperature": "ns=2;s=PRESS-1.temperature",
                "Vibration": "ns=2;s=PRESS-1.vibration", "Speed": "ns=2;s=PRESS-1.speed"}
            simulator.pause()
            await asyncio.sleep(0.05)
            served = {code: (when, value) for code, when, value in simulator.history}
            for code, signal in simulator.model.signals.items():
                data_value = await client.get_node(f"ns=2;s={code}").read_data_value()
                assert data_value.Value is not None
                assert data_value.Value.VariantType == TYPES[signal.kind], code
                assert data_value.StatusCode is not None and data_value.StatusCode.is_good()
                when, value = served[code]
                assert data_value.Value.Value == value, code
                assert data_value.SourceTimestamp == when, code
                assert data_value.ServerTimestamp is not None
            # Read-only, like a PLC's status: only the simulator itself changes values.
            node = client.get_node("ns=2;s=PRESS-1.temperature")
            with pytest.raises(UaStatusCodeError) as refused:
                await node.write_value(ua.Variant(1.0, ua.VariantType.Double))
            assert refused.value.code == StatusCodes.BadUserAccessDenied

    asyncio.run(asyncio.wait_for(scenario(), timeout=15))


def test_subscription_sees_written_values_with_their_source_time(
        plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, opcua_port=0, modbus_port=None) as simulator, \
                Client(simulator.opcua_endpoint or "") as client:
            simulator.pause()
            recorder = Recorder()
            subscription = await client.create_subscription(20, recorder)
            codes = ["PRESS-1.state", "PRESS-1.fault_code", "PRESS-1.good",
                     "PRESS-1.temperature"]
            await subscription.subscribe_data_change(
                [client.get_node(f"ns=2;s={code}") for code in codes], queuesize=100)
            await asyncio.sleep(0.2)
            recorder.values.clear()
            moment = dt.datetime(2026, 3, 2, 6, 0, 0, 250_000, tzinfo=dt.UTC)
            await simulator.write("PRESS-1.fault_code", 7, moment)
            await simulator.write("PRESS-1.state", 5, moment)
            await simulator.write("PRESS-1.good", 2**32 - 1, moment)
            for step in range(5):
                await simulator.write("PRESS-1.temperature", 40.5 + step,
                                      moment + dt.timedelta(seconds=step))
            for _ in range(100):
                if len(recorder.values) >= 8:
                    break
                await asyncio.sleep(0.02)
            got = [(code, value) for code, value, _ in recorder.values]
            assert got == [("PRESS-1.fault_code", 7), ("PRESS-1.state", 5),
                           ("PRESS-1.good", 2**32 - 1),
                           *(("PRESS-1.temperature", 40.5 + step) for step in range(5))]
            stamps = [stamp for _, _, stamp in recorder.values]
            expected = [moment] * 3 + [moment + dt.timedelta(seconds=s) for s in range(5)]
            assert stamps == expected

    asyncio.run(asyncio.wait_for(scenario(), timeout=15))


@pytest.mark.slow
def test_opcua_restarts_on_the_same_port_while_modbus_goes_on(
        plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, opcua_port=0, modbus_port=0, speed=10) as simulator:
            endpoint = simulator.opcua_endpoint or ""
            async with Client(endpoint) as client:
                before = await client.get_node("ns=2;s=PRESS-1.good").read_value()
            await simulator.stop_opcua()
            with pytest.raises(OSError):
                async with Client(endpoint, timeout=1):
                    pass
            # The line and the Modbus server do not notice the OPC UA server going down.
            down_at = simulator.model.time
            modbus = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port or 0)
            await modbus.connect()
            try:
                first = (await modbus.read_holding_registers(6, count=2, device_id=1)).registers
                await asyncio.sleep(0.1)
                second = (await modbus.read_holding_registers(6, count=2, device_id=1)).registers
            finally:
                modbus.close()
            assert first != second and simulator.model.time > down_at
            await simulator.start_opcua()
            assert simulator.opcua_endpoint == endpoint
            async with Client(endpoint) as client:
                node = client.get_node("ns=2;s=PRESS-1.good")
                after = await node.read_value()
                assert after >= before
                simulator.pause()
                await asyncio.sleep(0.05)
                latest = {c.signal_code: c.value for c in simulator.model.values()}
                # The restarted server serves what the model did while it was down.
                assert await node.read_value() == latest["PRESS-1.good"]

    asyncio.run(asyncio.wait_for(scenario(), timeout=15))
