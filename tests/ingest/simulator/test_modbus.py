"""The Modbus TCP server, read by a real pymodbus client over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from ingest.simulator.layout import fault_code_signal, register_count, register_map
from ingest.simulator.runner import Simulator
from transactional.plant_file import PlantDefinition

DataType = AsyncModbusTcpClient.DATATYPE


def decode(registers: Sequence[int], address: int, register_type: str,
           order: Literal["big", "little"]) -> int | float:
    if register_type == "uint16":
        return registers[address]
    data_type = DataType.UINT32 if register_type == "uint32" else DataType.FLOAT32
    value = AsyncModbusTcpClient.convert_from_registers(
        registers[address:address + 2], data_type, word_order=order)
    assert isinstance(value, int | float)
    return value


@pytest.mark.parametrize("order", ["big", "little"])
def test_units_serve_state_counters_and_floats_in_either_word_order(
        plant: PlantDefinition, order: Literal["big", "little"]) -> None:
    async def scenario() -> None:
        async with Simulator(plant, seed=1, opcua_port=None, modbus_port=0, word_order=order,
                             counter_start=70_000, tick_seconds=0.05, speed=20) as simulator:
            await asyncio.sleep(0.3)
            simulator.pause()
            await asyncio.sleep(0.05)
            # 70 000 needs both words: a swapped word order would not decode to it.
            await simulator.write("PRESS-2.good", 70_123)
            served = {c.signal_code: c.value for c in simulator.model.values()}
            served["PRESS-2.good"] = 70_123
            client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port or 0)
            await client.connect()
            try:
                for unit, machine in enumerate(plant.machines[:2], start=1):
                    count = register_count(machine)
                    holding = await client.read_holding_registers(0, count=count,
                                                                  device_id=unit)
                    inputs = await client.read_input_registers(0, count=count, device_id=unit)
                    assert not holding.isError() and not inputs.isError()
                    assert holding.registers == inputs.registers
                    layout = register_map(machine)
                    assert set(layout) == {s.code for s in machine.signals} | {
                        fault_code_signal(machine.code)}
                    for code, register in layout.items():
                        value = decode(holding.registers, register.address, register.type,
                                       order)
                        assert value == served[code], code
                    assert holding.registers[0] in {1, 2, 3, 5}
            finally:
                client.close()

    asyncio.run(scenario())


def test_reading_past_the_block_or_an_unknown_unit_is_refused(plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, opcua_port=None, modbus_port=0) as simulator:
            client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port or 0)
            await client.connect()
            try:
                count = register_count(plant.machines[0])
                for address, length in ((0, count + 1), (count, 1), (count - 1, 2)):
                    response = await client.read_holding_registers(address, count=length,
                                                                   device_id=1)
                    assert isinstance(response, ExceptionResponse), (address, length)
                    assert response.exception_code == 2
                response = await client.read_input_registers(count, count=1, device_id=8)
                assert isinstance(response, ExceptionResponse)
                assert response.exception_code == 2
                # A unit id the plant does not have: "gateway target did not respond".
                response = await client.read_holding_registers(0, count=1, device_id=9)
                assert isinstance(response, ExceptionResponse)
                assert response.exception_code == 0x0B
                # The block is status, like a PLC's: clients cannot write it.
                refused = await client.write_register(0, 7, device_id=1)
                assert refused.isError()
                last = await client.read_holding_registers(count - 2, count=2, device_id=1)
                assert not last.isError()
            finally:
                client.close()

    asyncio.run(scenario())


def test_counters_roll_over_on_the_wire(plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, seed=2, opcua_port=None, modbus_port=0,
                             counter_start=2**32 - 3, speed=100, record=True) as simulator:
            client = AsyncModbusTcpClient("127.0.0.1", port=simulator.modbus_port or 0)
            await client.connect()
            seen: list[int] = []
            try:
                while len(seen) < 2 or seen[-1] >= seen[0]:
                    response = await client.read_holding_registers(2, count=2, device_id=1)
                    value = decode(response.registers, 0, "uint32", "big")
                    assert isinstance(value, int)
                    seen.append(value)
                    await asyncio.sleep(0.02)
            finally:
                client.close()
            assert seen[0] >= 2**32 - 3 and seen[-1] < 10

    asyncio.run(asyncio.wait_for(scenario(), timeout=10))
