"""Runs the line model against the wall clock and serves every change over OPC UA and Modbus.

`Simulator` owns the servers and the ticking task, and can record what it served so tests
can compare a collector's rows with the truth. It does not collect or store anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from ingest.simulator.layout import WordOrder
from ingest.simulator.layout import word_order as checked_word_order
from ingest.simulator.modbus_server import ModbusServer
from ingest.simulator.model import Change, LineModel
from ingest.simulator.opcua_server import OpcUaServer
from ingest.simulator.sparkplug_edge import SparkplugEdge, SparkplugTarget
from transactional.plant_file import PlantDefinition

ServedValue = tuple[str, dt.datetime, int | float]

_log = logging.getLogger(__name__)

# When the loop falls this far behind (a stalled event loop, a suspended laptop) it drops
# the missed ticks instead of running them back to back, which would flood the clients.
_MAX_LAG_SECONDS = 1.0


class Simulator:
    """A plant's machines, live: `async with Simulator(plant) as simulator: ...`.

    `history` (with record=True) lists every value served, as (signal, UTC time, value):
    on Modbus always, on OPC UA while its server runs.
    """

    def __init__(self, plant: PlantDefinition, seed: int = 0, speed: float = 1.0,
                 opcua_port: int | None = 4840, modbus_port: int | None = 5020,
                 word_order: WordOrder | str = "big", counter_start: int = 0,
                 tick_seconds: float = 0.1, record: bool = False,
                 host: str = "127.0.0.1", sparkplug: SparkplugTarget | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed {speed}: give a factor above 0 (1 = real time)")
        if not tick_seconds > 0:
            raise ValueError(f"tick_seconds {tick_seconds}: give a duration above 0")
        self.plant = plant
        self.seed = seed
        self.host = host
        self.word_order = checked_word_order(word_order)
        self.speed = speed
        self.tick_seconds = tick_seconds
        self.model = LineModel(plant, seed, counter_start)
        self.opcua = None if opcua_port is None else OpcUaServer(plant, host, opcua_port)
        self.modbus = None if modbus_port is None else ModbusServer(
            plant, host, modbus_port, self.word_order)
        self.sparkplug = None if sparkplug is None else SparkplugEdge(plant, sparkplug)
        self.record = record
        self.history: list[ServedValue] = []
        self._paused = False
        self._last_served_at: dt.datetime | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def opcua_port(self) -> int | None:
        return None if self.opcua is None else self.opcua.port

    @property
    def modbus_port(self) -> int | None:
        return None if self.modbus is None else self.modbus.port

    @property
    def opcua_endpoint(self) -> str | None:
        return None if self.opcua is None else self.opcua.endpoint

    @property
    def paused(self) -> bool:
        return self._paused

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, traceback: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Serve the model's current values, open both servers, start ticking."""
        if self._ticker is not None:
            raise RuntimeError("the simulator is already running")
        values = [(change.signal_code, change.value) for change in self.model.values()]
        now = self._now()
        await self._serve(values, now)
        try:
            if self.modbus is not None:
                await self.modbus.start()
            if self.opcua is not None:
                await self.opcua.start()
            if self.sparkplug is not None:
                self.sparkplug.set_initial(values, now)
                await self.sparkplug.start()
        except BaseException:
            await self._stop_servers()
            raise
        self._ticker = asyncio.create_task(self._tick(), name="line simulator ticks")
        self._ticker.add_done_callback(_report_failure)

    async def stop(self) -> None:
        """Stop ticking and close both servers; raises what made the ticking fail, if so."""
        ticker, self._ticker = self._ticker, None
        failure: BaseException | None = None
        if ticker is not None:
            if ticker.done() and not ticker.cancelled():
                failure = ticker.exception()
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await self._stop_servers()
        if failure is not None:
            raise failure

    async def _stop_servers(self) -> None:
        if self.sparkplug is not None:
            await self.sparkplug.stop()
        if self.opcua is not None:
            await self.opcua.stop()
        if self.modbus is not None:
            await self.modbus.stop()

    def pause(self) -> None:
        """Hold simulated time: the model stops changing values; `write` still serves."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def reset_counters(self, machine_code: str) -> None:
        """A machine's part counters restart at 0 (a PLC restart), served on the next tick."""
        self.model.reset_counters(machine_code)

    def preset_counters(self, machine_code: str, good: int | None = None,
                        reject: int | None = None) -> None:
        """Set a machine's part counters (a device back at a retained or preset value);
        the model counts on from there, served on the next tick."""
        self.model.preset_counters(machine_code, good, reject)

    async def stop_modbus(self) -> None:
        """Take the Modbus server down (OPC UA and the model go on), as a device reboot does."""
        await self._modbus().stop()

    async def start_modbus(self) -> None:
        """Bring the Modbus server back on its port; it serves the latest values."""
        await self._modbus().start()

    def _modbus(self) -> ModbusServer:
        if self.modbus is None:
            raise RuntimeError("this simulator was started without Modbus (modbus_port=None)")
        return self.modbus

    async def stop_opcua(self) -> None:
        """Take the OPC UA server down (Modbus and the model go on), as a PLC reboot does."""
        await self._opcua().stop()

    async def start_opcua(self) -> None:
        """Bring the OPC UA server back on its port with the latest values."""
        await self._opcua().start()

    def _opcua(self) -> OpcUaServer:
        if self.opcua is None:
            raise RuntimeError("this simulator was started without OPC UA (opcua_port=None)")
        return self.opcua

    async def write(self, signal_code: str, value: int | float,
                    when: dt.datetime | None = None) -> None:
        """Serve one value on both protocols, stamped `when` (default now, UTC).

        The model does not learn of it: a later tick may serve the model's own value again.
        """
        if when is None:
            when = self._now()
        elif when.tzinfo is None:
            raise ValueError(f"{signal_code}: give the time of a value with its time zone")
        try:
            signal = self.model.signals[signal_code]
        except KeyError:
            raise ValueError(f"the simulator serves no signal {signal_code!r}") from None
        await self._serve(((signal_code, signal.check(value)),), when)

    async def write_status(self, signal_code: str, status: int,
                           value: int | float | None = None,
                           when: dt.datetime | None = None) -> None:
        """Serve a bad or uncertain OPC UA status for one signal (OPC UA only)."""
        await self._opcua().write_status(signal_code, status, when or dt.datetime.now(dt.UTC),
                                         value)

    async def _serve(self, changes: Iterable[tuple[str, int | float]],
                     when: dt.datetime) -> None:
        batch = list(changes)
        if self.modbus is not None:
            self.modbus.write_many(batch)
        if self.sparkplug is not None and self._ticker is not None:
            self.sparkplug.publish(batch, when)
        if self.opcua is not None:
            await self.opcua.write_many(batch, when)
        if self.record:
            self.history.extend((code, when, value) for code, value in batch)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.tick_seconds / self.speed
        due = loop.time() + interval
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -_MAX_LAG_SECONDS:
                due = loop.time()
            else:
                # Behind schedule: still let clients and servers run between ticks.
                await asyncio.sleep(0)
            due += interval
            if not self._paused:
                changes: list[Change] = self.model.step(self.tick_seconds)
                await self._serve(((c.signal_code, c.value) for c in changes), self._now())

    def _now(self) -> dt.datetime:
        now = dt.datetime.now(dt.UTC)
        if self.sparkplug is None:
            return now
        # Sparkplug B carries milliseconds: what is served is what can be stored. Ticks run
        # back to back after a stall get a millisecond each, as they would on a PLC.
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_served_at is not None and now <= self._last_served_at:
            now = self._last_served_at + dt.timedelta(milliseconds=1)
        self._last_served_at = now
        return now


def _report_failure(task: asyncio.Task[None]) -> None:
    # stop() raises the failure too, but a long run should not go silent until then.
    if not task.cancelled() and task.exception() is not None:
        _log.error("the line simulator stopped ticking", exc_info=task.exception())
