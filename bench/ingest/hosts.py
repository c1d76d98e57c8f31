"""The simulator and the collector of the end-to-end benchmarks, each in its own process.

A host is spawned once and steered over a pipe, one command at a time: the simulator host
serves a plant and drives values at a fixed rate or plays its model at a speed; the
collector host runs `ingest.collect` against it. What the figures mean is decided by the
caller; hosts only do and count.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from bench.ingest.scratch import BenchError
from mes.settings import get_settings

# Ticks this far behind are dropped, as the simulator's own ticking does.
_MAX_LAG_SECONDS = 1.0
# Writes between chances for the OPC UA server to publish when driving flat out.
_WRITES_PER_YIELD = 50


class _Host(Protocol):
    async def handle(self, command: str, arguments: dict[str, Any]) -> Any: ...

    async def close(self) -> None: ...


def simulator_host(conn: Connection) -> None:
    _run_host(conn, _SimulatorHost)


def collector_host(conn: Connection) -> None:
    _run_host(conn, _CollectorHost)


def _run_host(conn: Connection, make_host: Callable[[], _Host]) -> None:
    # Nothing a child prints may reach the bench's stdout, which may be carrying JSON.
    os.dup2(2, 1)
    # Ctrl-C stops the bench, which then stops its hosts in order (the database last).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING,
                        format=f"bench {multiprocessing.current_process().name}: "
                               "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    asyncio.run(_serve(conn, make_host()))


async def _serve(conn: Connection, host: _Host) -> None:
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                command, arguments = await asyncio.to_thread(conn.recv)
            except EOFError:
                return  # the bench is gone
            if command == "exit":
                return
            try:
                result = await host.handle(command, arguments)
            except Exception as exc:
                conn.send(("error", f"{command}: {type(exc).__name__}: {exc}"))
            else:
                conn.send(("ok", result))
    finally:
        await host.close()


class _SimulatorHost:
    def __init__(self) -> None:
        from ingest.simulator.runner import Simulator

        self.simulator: Simulator | None = None
        self._written: dict[str, int] = {}  # per signal, so each write is a new value

    async def handle(self, command: str, arguments: dict[str, Any]) -> Any:
        commands: dict[str, Callable[..., Any]] = {
            "serve": self.serve, "drive": self.drive, "play": self.play, "close": self.close}
        return await commands[command](**arguments)

    async def serve(self, plant: Any, opcua: bool, modbus: bool, seed: int = 0,
                    tick_seconds: float = 0.1, ticking: bool = False) -> dict[str, Any]:
        from ingest.simulator.runner import Simulator

        await self.close()
        simulator = Simulator(plant, seed=seed, opcua_port=0 if opcua else None,
                              modbus_port=0 if modbus else None, tick_seconds=tick_seconds)
        await simulator.start()
        if not ticking:
            simulator.pause()
        self.simulator = simulator
        return {"opcua_port": simulator.opcua_port, "modbus_port": simulator.modbus_port}

    async def close(self) -> None:
        simulator, self.simulator = self.simulator, None
        if simulator is not None:
            await simulator.stop()

    def _running(self) -> Any:
        if self.simulator is None:
            raise RuntimeError("no simulator is serving: send 'serve' first")
        return self.simulator

    async def drive(self, codes: list[str], rate: float | None, seconds: float,
                    ) -> dict[str, Any]:
        """Write new values round-robin over `codes`, `rate` per second (None: flat out).

        Writes follow a fixed schedule; after a sleep, every write that has come due is
        made, so a late start never turns into a burst larger than the delay.
        """
        simulator = self._running()
        ranges = {}
        for code in codes:
            signal = simulator.model.signals[code]
            low = signal.low_limit if signal.low_limit is not None else 0.0
            high = signal.high_limit if signal.high_limit is not None else low + 100.0
            ranges[code] = (low, high - low)
        loop = asyncio.get_running_loop()
        interval = 1.0 / rate if rate else 0.0
        cpu = time.process_time()
        started_at = time.time()
        start = loop.time()
        end = start + seconds
        written = since_yield = 0
        late = 0.0
        while True:
            now = loop.time()
            if now >= end:
                break
            if interval:
                due = start + written * interval
                if due >= end:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
                    since_yield = 0
                    continue
                late = max(late, now - due)
            code = codes[written % len(codes)]
            count = self._written[code] = self._written.get(code, 0) + 1
            low, span = ranges[code]
            # 37 is prime to 1000: consecutive writes of a signal never repeat a value.
            value = low + span * ((count * 37) % 1000) / 1000
            await simulator.write(code, value, when=dt.datetime.now(dt.UTC))
            written += 1
            since_yield += 1
            if since_yield >= _WRITES_PER_YIELD:
                await asyncio.sleep(0)
                since_yield = 0
        elapsed = loop.time() - start
        return {"written": written, "started_at": started_at, "ended_at": time.time(),
                "seconds": elapsed, "per_second": written / elapsed if elapsed else 0.0,
                "late_max_ms": late * 1000, "cpu_seconds": time.process_time() - cpu}

    async def play(self, speed: float, seconds: float) -> dict[str, Any]:
        """Step the model at `speed` over OPC UA for `seconds`, as `mes simulate --speed`."""
        simulator = self._running()
        if simulator.opcua is None:
            raise RuntimeError("play needs the OPC UA server")
        model = simulator.model
        tick = simulator.tick_seconds
        process_values = {code for code, s in model.signals.items()
                          if s.kind == "process_value"}
        loop = asyncio.get_running_loop()
        interval = tick / speed
        cpu = time.process_time()
        started_at = time.time()
        start = loop.time()
        end = start + seconds
        due = start + interval
        ticks = served = served_values = skipped = 0
        while due < end:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -_MAX_LAG_SECONDS:
                skipped += int(-delay / interval)
                due = loop.time()
            else:
                await asyncio.sleep(0)
            due += interval
            changes = model.step(tick)
            await simulator.opcua.write_many(((c.signal_code, c.value) for c in changes),
                                             dt.datetime.now(dt.UTC))
            ticks += 1
            served += len(changes)
            served_values += sum(1 for c in changes if c.signal_code in process_values)
        return {"ticks": ticks, "ticks_due": round(seconds / interval), "skipped": skipped,
                "served": served, "served_process_values": served_values,
                "started_at": started_at, "ended_at": time.time(),
                "cpu_seconds": time.process_time() - cpu}


class _CollectorHost:
    def __init__(self) -> None:
        from ingest.collect import Collection

        self.collection: Collection | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def handle(self, command: str, arguments: dict[str, Any]) -> Any:
        commands: dict[str, Callable[..., Any]] = {
            "collect": self.collect, "health": self.health, "finish": self.finish}
        return await commands[command](**arguments)

    async def collect(self, url: str, tag_map: str, directory: str, flush_seconds: float,
                      role: str | None, connect_seconds: float = 30.0) -> dict[str, Any]:
        """Start collecting with a tag map; returns once every source delivers."""
        from ingest.collect import CollectorFiles, build, load_tag_map, run

        await self.finish()
        files = CollectorFiles(Path(directory))
        files.directory.mkdir(parents=True, exist_ok=True)
        path = files.directory / "tags.toml"
        path.write_text(tag_map)
        collection = build(load_tag_map(path, url, files, role), url, files,
                           spool_max_bytes=1 << 30, flush_rows=get_settings().flush_rows,
                           flush_seconds=flush_seconds, role=role)
        self.collection = collection
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(run(collection, self._stop, None))
        deadline = time.monotonic() + connect_seconds
        while not (all(c.connected.is_set() for c in collection.opcua)
                   and all(c.requests for c in collection.modbus)
                   and all(c.connected.is_set() for c in collection.mqtt)):
            if self._task.done():
                self._task.result()
                raise RuntimeError("the collection stopped before it was connected")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the collector was not connected after {connect_seconds} s: "
                                   f"{collection.health.sources}")
            await asyncio.sleep(0.05)
        return await self.health()

    async def health(self) -> dict[str, Any]:
        if self.collection is None:
            raise RuntimeError("no collection is running: send 'collect' first")
        snapshot = self.collection.health.snapshot()
        modbus = self.collection.modbus
        snapshot["modbus_requests"] = sum(c.requests for c in modbus)
        snapshot["modbus_polls"] = sum(c.polls for c in modbus)
        # Every request reads one contiguous block; a device may need more than one.
        snapshot["modbus_registers"] = sum(
            c.requests * sum(r.count for r in c.device.reads) / len(c.device.reads)
            for c in modbus if c.device.reads)
        snapshot["opcua_reconnects"] = sum(c.reconnects for c in self.collection.opcua)
        # Every thread of this process (the writer's worker too), to set rates against.
        snapshot["cpu_seconds"] = time.process_time()
        snapshot["monotonic"] = time.monotonic()
        return snapshot

    async def finish(self) -> dict[str, Any] | None:
        """Stop collecting once everything queued is stored; the last health figures."""
        task, self._task = self._task, None
        if task is None:
            return None
        self._stop.set()
        await task
        last = await self.health()
        self.collection = None
        return last

    async def close(self) -> None:
        await self.finish()


class Child:
    """The bench's handle on one host process."""

    def __init__(self, name: str, target: Callable[[Connection], None]) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = name
        self._conn, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(child_end,), name=name,
                                       daemon=True)
        self.process.start()
        child_end.close()
        self._ready = False

    def wait_ready(self, timeout: float = 60.0) -> None:
        if not self._ready:
            self._receive(timeout, expect="ready")
            self._ready = True

    def send(self, command: str, **arguments: Any) -> None:
        self.wait_ready()
        try:
            self._conn.send((command, arguments))
        except OSError:
            # A broken pipe reaching the command line would pass for a closed stdout.
            raise self._ended() from None

    def poll(self) -> bool:
        """Whether an answer is waiting."""
        return self._conn.poll(0)

    def receive(self, timeout: float) -> Any:
        return self._receive(timeout, expect="ok")

    def call(self, command: str, timeout: float = 60.0, **arguments: Any) -> Any:
        self.send(command, **arguments)
        return self.receive(timeout)

    def _receive(self, timeout: float, expect: str) -> Any:
        try:
            if not self._conn.poll(timeout):
                raise BenchError(f"the {self.name} did not answer within {timeout:.0f} s")
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            raise self._ended() from None
        if status == "error":
            raise BenchError(f"the {self.name} failed: {payload}")
        if status != expect:
            raise BenchError(f"the {self.name} answered {status!r} where {expect!r} was due")
        return payload

    def _ended(self) -> BenchError:
        self.process.join(1)
        return BenchError(f"the {self.name} process ended unexpectedly (exit code "
                          f"{self.process.exitcode}); see its messages above")

    def close(self) -> None:
        if self.process.is_alive() and not self._conn.closed:
            # A host that has just died cannot be told to exit: terminated below.
            with contextlib.suppress(OSError):
                self._conn.send(("exit", {}))
            self.process.join(15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()
