"""The simulator as a Sparkplug B edge node: each machine a device, each change a metric.

It publishes births (NBIRTH, then a DBIRTH per machine), one DDATA per machine and tick,
and an NDEATH when it stops (the broker publishes the same as its will when the connection
breaks); it answers rebirth requests. Unlike the specification's QoS 0, data goes with QoS 1,
and what the broker has not acknowledged when the connection breaks is kept, with what
changes meanwhile, and sent again after the next births as historical values with their
own times. It publishes what the runner gives it; it decides no values.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections import deque
from dataclasses import dataclass

import paho.mqtt.client as paho

from ingest import sparkplug
from ingest.broker import BrokerAddress, BrokerError, Connection, Will
from ingest.simulator.layout import ServedKind, ServedSignal, machine_signals
from transactional.plant_file import PlantDefinition

log = logging.getLogger("mes.simulator.sparkplug")

DATA_TYPES: dict[ServedKind, int] = {
    "state": sparkplug.INT32,
    "fault_code": sparkplug.UINT16,
    "good_count": sparkplug.UINT32,
    "reject_count": sparkplug.UINT32,
    "process_value": sparkplug.DOUBLE,
}
# Aliases change with every NBIRTH, as they may: a host must rebuild them from the births.
_ALIASES_PER_BIRTH = 10_000

Change = tuple[str, int | float, int]  # signal code, value, time (ms since the epoch)


def metric_name(signal: ServedSignal) -> str:
    """The metric a signal is published as: State, FaultCode, GoodCount, Temperature..."""
    return signal.browse_name


@dataclass(frozen=True)
class SparkplugTarget:
    """Where the simulator publishes: the broker, and its group and edge node ids."""

    address: BrokerAddress
    group: str = "open-mes"
    node: str = "simulator"
    qos: int = 1


class SparkplugEdge:
    """One edge node for a whole plant: `await start()`, `publish(...)` per tick, `await stop()`."""

    def __init__(self, plant: PlantDefinition, target: SparkplugTarget) -> None:
        self.target = target
        self.devices: dict[str, list[ServedSignal]] = {
            machine.code: machine_signals(machine) for machine in plant.machines}
        self._device_of = {s.code: device for device, signals in self.devices.items()
                           for s in signals}
        self._signals = {s.code: s for signals in self.devices.values() for s in signals}
        self._current: dict[str, tuple[int | float, int]] = {}  # handed over: value, time
        self._acknowledged: dict[str, tuple[int | float, int]] = {}  # as the broker has it
        self._backlog: deque[tuple[str, list[Change]]] = deque()  # device, changes
        self._in_flight: dict[int, tuple[str, list[Change]]] = {}  # mid -> device, changes
        self._connection: Connection | None = None
        self._born = False
        self._seq = 0
        self.bd_seq = 0
        self.births = 0
        self.rebirths_answered = 0
        self.published = 0
        self._skip = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def client_id(self) -> str:
        return f"sparkplug-{self.target.group}-{self.target.node}"

    def _topic(self, kind: str, device: str | None = None) -> str:
        return sparkplug.topic(self.target.group, kind, self.target.node, device)

    def set_initial(self, changes: list[tuple[str, int | float]], when: dt.datetime) -> None:
        """The values the first births carry (the model's values at start)."""
        stamp = sparkplug.milliseconds(when)
        for code, value in changes:
            if code in self._signals:
                self._current[code] = (value, stamp)
                self._acknowledged.setdefault(code, (value, stamp))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sparkplug edge node")

    async def stop(self) -> None:
        """Publish NDEATH and disconnect (what is still in the backlog is not sent)."""
        task, self._task = self._task, None
        connection = self._connection
        if connection is not None and connection.connected:
            with contextlib.suppress(BrokerError):
                connection.publish(self._topic("NDEATH"), self._death_payload(), qos=1)
            await connection.close()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def skip_sequence(self) -> None:
        """The next message skips a sequence number, as if one had been lost on the way."""
        self._skip += 1

    # --- publishing ------------------------------------------------------------------

    def publish(self, changes: list[tuple[str, int | float]], when: dt.datetime) -> None:
        """One DDATA per machine with what changed; kept for later while not connected."""
        stamp = sparkplug.milliseconds(when)
        by_device: dict[str, list[Change]] = {}
        for code, value in changes:
            device = self._device_of.get(code)
            if device is None:
                continue
            self._current[code] = (value, stamp)
            by_device.setdefault(device, []).append((code, value, stamp))
        for device, device_changes in by_device.items():
            if self._born and self._connection is not None and self._connection.connected:
                self._send_data(device, device_changes, historical=False)
            else:
                self._backlog.append((device, device_changes))

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1 + self._skip) % 256
        self._skip = 0
        return self._seq

    def _alias(self, code: str) -> int:
        device = self._device_of[code]
        index = list(self.devices).index(device) * 100 + [
            s.code for s in self.devices[device]].index(code)
        return self.births * _ALIASES_PER_BIRTH + index + 1

    def _send_data(self, device: str, changes: list[Change], historical: bool) -> None:
        assert self._connection is not None
        metrics = [sparkplug.MetricOut(value, DATA_TYPES[self._signals[code].kind],
                                       alias=self._alias(code), timestamp=stamp,
                                       historical=historical)
                   for code, value, stamp in changes]
        payload = sparkplug.encode(metrics, max(stamp for _, _, stamp in changes),
                                   self._next_seq())
        mid = self._connection.publish(self._topic("DDATA", device), payload, self.target.qos)
        self._in_flight[mid] = (device, changes)
        self.published += 1

    def _acknowledged_by_broker(self, mid: int) -> None:
        sent = self._in_flight.pop(mid, None)
        if sent is not None:
            for code, value, stamp in sent[1]:
                self._acknowledged[code] = (value, stamp)

    def _births(self, connection: Connection) -> None:
        """NBIRTH and every DBIRTH, with the values the broker has acknowledged."""
        self.births += 1
        self._seq = 0
        now = sparkplug.milliseconds(dt.datetime.now(dt.UTC))
        node_metrics = [
            sparkplug.MetricOut(self.bd_seq, sparkplug.INT64, name=sparkplug.BD_SEQ,
                                timestamp=now),
            sparkplug.MetricOut(False, sparkplug.BOOLEAN, name=sparkplug.REBIRTH, timestamp=now),
        ]
        connection.publish(self._topic("NBIRTH"), sparkplug.encode(node_metrics, now, 0),
                           self.target.qos)
        for device, signals in self.devices.items():
            metrics = []
            for signal in signals:
                value, stamp = self._acknowledged.get(signal.code, (0, now))
                metrics.append(sparkplug.MetricOut(
                    value, DATA_TYPES[signal.kind], name=metric_name(signal),
                    alias=self._alias(signal.code), timestamp=stamp))
            connection.publish(self._topic("DBIRTH", device),
                               sparkplug.encode(metrics, now, self._next_seq()), self.target.qos)
        self._born = True

    def _death_payload(self) -> bytes:
        now = sparkplug.milliseconds(dt.datetime.now(dt.UTC))
        return sparkplug.encode([sparkplug.MetricOut(self.bd_seq, sparkplug.INT64,
                                                     name=sparkplug.BD_SEQ)], now)

    # --- the connection --------------------------------------------------------------

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            connection = Connection(
                self.client_id, self._on_command, clean_start=True, max_inflight=1000,
                will=Will(self._topic("NDEATH"), self._death_payload()))
            connection.on_published = self._acknowledged_by_broker
            try:
                await connection.open(self.target.address)
                await connection.subscribe([self._topic("NCMD")])
                self._connection = connection
                self._births(connection)
                # What the broker never acknowledged, then what changed while away: as
                # historical values, in the order they were made.
                while self._backlog:
                    device, changes = self._backlog.popleft()
                    self._send_data(device, changes, historical=True)
                self.connected.set()
                backoff = 0.2
                await connection.lost
            except BrokerError as exc:
                log.debug("sparkplug edge node: %s", exc)
            finally:
                self.connected.clear()
                self._born = False
                self._connection = None
                self._backlog.extendleft(reversed(list(self._in_flight.values())))
                self._in_flight.clear()
                await connection.close()
            self.bd_seq = (self.bd_seq + 1) % 256
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, 2.0)

    def _on_command(self, message: paho.MQTTMessage) -> None:
        try:
            payload = sparkplug.decode(bytes(message.payload))
        except sparkplug.PayloadError:
            return
        wanted = any(m.name == sparkplug.REBIRTH and m.boolean_value for m in payload.metrics)
        connection = self._connection
        if wanted and connection is not None and connection.connected:
            self.rebirths_answered += 1
            self._births(connection)
