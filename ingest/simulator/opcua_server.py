"""Serves a plant's machines over OPC UA (asyncua), one object per machine, one variable per signal.

Variables are `ns=2;s=<signal code>` under namespace `urn:open-mes:simulator`, read-only,
no security, anonymous. It serves what it is given; it does not decide what values to serve.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Iterable
from typing import cast

from asyncua import ua
from asyncua.server.server import Server
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes

from ingest.simulator.layout import ServedKind, ServedSignal, machine_signals, plant_signals
from transactional.plant_file import PlantDefinition

NAMESPACE_URI = "urn:open-mes:simulator"

VARIANT_TYPES: dict[ServedKind, ua.VariantType] = {
    "state": ua.VariantType.Int32,
    "fault_code": ua.VariantType.UInt16,
    "good_count": ua.VariantType.UInt32,
    "reject_count": ua.VariantType.UInt32,
    "process_value": ua.VariantType.Double,
}

_GOOD = ua.StatusCode(ua.UInt32(StatusCodes.Good))
_CLOCK_SECONDS = 1.0


def endpoint_url(host: str, port: int) -> str:
    """opc.tcp://host:port, with an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"opc.tcp://{shown}:{port}"


def _utc(moment: dt.datetime) -> ua.DateTime:
    # asyncua annotates timestamps with its own datetime subclass but encodes any datetime.
    return cast(ua.DateTime, moment)


class OpcUaWriteError(RuntimeError):
    """The address space refused a value (a wrong type, a node that is gone)."""


class OpcUaServer:
    """An asyncua server for one plant that can be stopped and started again on its port."""

    def __init__(self, plant: PlantDefinition, host: str = "127.0.0.1", port: int = 4840,
                 ) -> None:
        self.plant = plant
        self.host = host
        self._port = port
        self.signals = plant_signals(plant)
        self._server: Server | None = None
        self._clock: asyncio.Task[None] | None = None
        self._node_ids: dict[str, tuple[ua.NodeId, ua.VariantType]] = {}
        self._retained: dict[str, tuple[int | float, dt.datetime]] = {}

    @property
    def port(self) -> int:
        """The bound port (the chosen one once a server started on port 0)."""
        return self._port

    @property
    def endpoint(self) -> str:
        return endpoint_url(self.host, self._port)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Build the address space with the last values written, then listen."""
        if self._server is not None:
            raise RuntimeError(f"the OPC UA server at {self.endpoint} is already running")
        # A fresh server each start, as after a PLC reboot: sessions and subscriptions are
        # gone and clients must reconnect. asyncua offers no way to skip building the
        # standard address space (its shelf cache needs gdbm and still loads lazily), so a
        # start costs about a second of CPU, spent in a worker thread.
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("open-mes line simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        # asyncua's own clock task makes stop() wait up to a second and never runs again
        # after a restart; the clock below does the same job and stops at once.
        server.disable_clock(True)
        namespace = await server.register_namespace(NAMESPACE_URI)
        await self._build(server, namespace)
        # From here on writes go straight into the address space; the retained values
        # (with the times they changed, like a PLC's) fill in what happened meanwhile.
        self._server = server
        for code, (value, when) in list(self._retained.items()):
            await self._write(server, code, value, when, when)
        try:
            await server.start()
        except OSError as error:
            # Server.start has already shut its internals down again.
            self._server = None
            raise OSError(error.errno, f"cannot serve OPC UA at {self.endpoint}: "
                          f"{error.strerror}") from error
        if server.bserver is not None and self._port == 0:
            self._port = server.bserver.port
        self._clock = asyncio.create_task(self._run_clock(server))

    async def _build(self, server: Server, namespace: int) -> None:
        objects = server.nodes.objects
        self._node_ids = {}
        for machine in self.plant.machines:
            folder = await objects.add_object(namespace, machine.code)
            await folder.write_attribute(AttributeIds.DisplayName, ua.DataValue(
                ua.Variant(ua.LocalizedText(machine.name), ua.VariantType.LocalizedText)))
            for signal in machine_signals(machine):
                node_id = ua.NodeId(ua.String(signal.code), ua.Int16(namespace))
                variant_type = VARIANT_TYPES[signal.kind]
                initial = 0.0 if signal.kind == "process_value" else 0
                await folder.add_variable(
                    node_id, ua.QualifiedName(signal.browse_name, namespace),
                    initial, variant_type)
                self._node_ids[signal.code] = (node_id, variant_type)

    async def stop(self) -> None:
        """Close every session and the listening socket; the port is free afterwards."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
            self._clock = None
        await server.stop()

    def signal(self, signal_code: str) -> ServedSignal:
        try:
            return self.signals[signal_code]
        except KeyError:
            raise ValueError(f"the simulator serves no signal {signal_code!r}") from None

    async def write(self, signal_code: str, value: int | float, when: dt.datetime) -> None:
        """Serve a new value with SourceTimestamp `when` (UTC); kept for a start if stopped."""
        await self.write_many(((signal_code, value),), when)

    async def write_many(self, changes: Iterable[tuple[str, int | float]],
                         when: dt.datetime) -> None:
        """Serve several values that changed at the same instant."""
        server = self._server
        received = dt.datetime.now(dt.UTC)
        for code, value in changes:
            if server is None:
                value = self.signal(code).check(value)
            else:
                value = await self._write(server, code, value, when, received)
            self._retained[code] = (value, when)

    async def _write(self, server: Server, signal_code: str, value: int | float,
                     when: dt.datetime, received: dt.datetime) -> int | float:
        value = self.signal(signal_code).check(value)
        node_id, variant_type = self._node_ids[signal_code]
        data_value = ua.DataValue(ua.Variant(value, variant_type), _GOOD,
                                  SourceTimestamp=_utc(when), ServerTimestamp=_utc(received))
        # The address space directly, not Server.write_attribute_value: it is the fast path
        # and, unlike the wrapper, it returns the status instead of dropping a refusal.
        status = await server.iserver.aspace.write_attribute_value(
            node_id, AttributeIds.Value, data_value)
        if not status.is_good():
            raise OpcUaWriteError(f"{signal_code}: the OPC UA server refused {value!r}: "
                                  f"{status.name}")
        return value

    async def write_status(self, signal_code: str, status: int, when: dt.datetime,
                           value: int | float | None = None) -> None:
        """Serve a bad or uncertain status, as a PLC reports a failed sensor (e.g.
        StatusCodes.BadSensorFailure, no value) or a doubtful one (an uncertain status with
        its last usable value); the next `write` serves a good value again."""
        server = self._server
        if server is None:
            raise RuntimeError("the OPC UA server is not running")
        node_id, variant_type = self._node_ids[signal_code]
        variant = (ua.Variant() if value is None else
                   ua.Variant(self.signal(signal_code).check(value), variant_type))
        data_value = ua.DataValue(variant, ua.StatusCode(ua.UInt32(status)),
                                  SourceTimestamp=_utc(when),
                                  ServerTimestamp=_utc(dt.datetime.now(dt.UTC)))
        result = await server.iserver.aspace.write_attribute_value(
            node_id, AttributeIds.Value, data_value)
        if not result.is_good():
            raise OpcUaWriteError(f"{signal_code}: the OPC UA server refused status "
                                  f"{status:#x}: {result.name}")

    async def _run_clock(self, server: Server) -> None:
        # Clients and tools watch ServerStatus.CurrentTime to see that a server is alive.
        status_node = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus))
        time_node = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime))
        while True:
            now = dt.datetime.now(dt.UTC)
            status = server.read_attribute_value(status_node).Value
            if status is not None and status.Value is not None:
                updated = copy.copy(status.Value)
                updated.CurrentTime = now
                await server.write_attribute_value(status_node, ua.DataValue(
                    ua.Variant(updated, ua.VariantType.ExtensionObject), _GOOD,
                    SourceTimestamp=_utc(now), ServerTimestamp=_utc(now)))
            await server.write_attribute_value(time_node, ua.DataValue(
                ua.Variant(now, ua.VariantType.DateTime), _GOOD,
                SourceTimestamp=_utc(now), ServerTimestamp=_utc(now)))
            await asyncio.sleep(_CLOCK_SECONDS)
