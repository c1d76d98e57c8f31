"""Shared pieces of the collector tests: a plant in the test database, a running collection,
and what the database holds afterwards, in the shape the simulator's history has."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec

import psycopg

from ingest.collect import Collection, CollectorFiles, build, run
from ingest.conditioning import Quality
from ingest.simulator.runner import ServedValue
from ingest.store import load_signal_map
from ingest.tagmap import PlantSignal, TagMap, read_tag_map
from mes.db import session_factory
from mes.settings import Settings
from tests.conftest import SAMPLE_PLANT
from transactional.audit import acting
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import PlantDefinition, read_plant_file

P = ParamSpec("P")

# The writer's batch size as `mes collect` uses it by default.
FLUSH_ROWS: int = Settings.model_fields["flush_rows"].default


def in_event_loop(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test in its own event loop (pytest calls it like a plain test)."""

    @functools.wraps(test)
    def run_test(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(test(*args, **kwargs))

    return run_test


def load_sample_plant(url: str) -> tuple[PlantDefinition, dict[str, PlantSignal]]:
    plant = read_plant_file(SAMPLE_PLANT)
    with session_factory(url)() as session, session.begin():
        acting(session, ADMINISTRATION)
        load_plant(session, plant)
    with psycopg.connect(url) as conn:
        return plant, load_signal_map(conn)


def tag_map_from(text: str, tmp_path: Path, signals: dict[str, PlantSignal],
                 name: str = "tags.toml") -> TagMap:
    path = tmp_path / name
    path.write_text(text)
    return read_tag_map(path, signals)


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s still not: {what}")
        await asyncio.sleep(0.05)


async def received(collection: Collection, more: int, what: str, *, since: int | None = None,
                   timeout: float = 15) -> None:
    """Until the collectors have received `more` samples beyond the `since` count (default:
    those received so far)."""
    start = collection.health.samples_received if since is None else since
    target = start + more
    await eventually(lambda: collection.health.samples_received >= target, timeout, what)


async def settled(collection: Collection, quiet: float = 0.3, timeout: float = 15) -> None:
    """Until no sample has arrived for `quiet` seconds and the writer's queue is empty: what
    the sources sent before is in the writer's hands (leaving `collecting` stores it)."""
    deadline = time.monotonic() + timeout
    seen, since = collection.health.samples_received, time.monotonic()
    while True:
        now = time.monotonic()
        if collection.health.samples_received != seen:
            seen, since = collection.health.samples_received, now
        elif now - since >= quiet and collection.health.queue_depth == 0:
            return
        if now > deadline:
            raise AssertionError(f"after {timeout} s the samples still had not stopped coming")
        await asyncio.sleep(0.05)


async def polled(collection: Collection, times: int, timeout: float = 15) -> None:
    """Until every Modbus device has been polled `times` more times."""
    targets = [device.polls + times for device in collection.modbus]
    await eventually(lambda: all(device.polls >= target for device, target
                                 in zip(collection.modbus, targets, strict=True)),
                     timeout, f"every device polled {times} more times")


# The `mes` command of this virtual environment, for tests that run the collector as a process.
MES = str(Path(sys.executable).parent / "mes")


async def start_collect(tag_map: Path, directory: Path, url: str) -> asyncio.subprocess.Process:
    """`mes collect` as its own process on the database at `url`."""
    env = {**os.environ, "MES_DATABASE_URL": url}
    return await asyncio.create_subprocess_exec(
        MES, "collect", "--tag-map", str(tag_map), "--dir", str(directory), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def collector_status(directory: Path) -> dict[str, Any]:
    """The running collector's status file (empty before it writes one)."""
    try:
        data: dict[str, Any] = json.loads((directory / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data


@contextlib.asynccontextmanager
async def collecting(tag_map: TagMap, url: str, directory: Path,
                     **options: float) -> AsyncIterator[Collection]:
    """A collection running in the background; leaving the block stops it cleanly."""
    files = CollectorFiles(directory)
    collection = build(tag_map, url, files, spool_max_bytes=int(options.pop("spool", 1 << 28)),
                       flush_rows=FLUSH_ROWS, flush_seconds=options.pop("flush_seconds", 0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(run(collection, stop, files, status_seconds=0.2))
    try:
        yield collection
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def stored_process_values(url: str) -> dict[str, list[tuple[dt.datetime, float | None, int]]]:
    """signal code -> [(ts, value, quality)] in time order."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT s.code, p.ts, p.value, p.quality FROM ts.process_value p "
            "JOIN mes.signal s ON s.id = p.signal_id ORDER BY s.code, p.ts").fetchall()
    stored: dict[str, list[tuple[dt.datetime, float | None, int]]] = defaultdict(list)
    for code, ts, value, quality in rows:
        stored[code].append((ts, value, quality))
    return stored


def stored_states(url: str) -> dict[str, list[tuple[dt.datetime, int, int | None]]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.code, s.ts, s.state, s.reason_code FROM ts.equipment_state s "
            "JOIN mes.equipment e ON e.id = s.equipment_id ORDER BY e.code, s.ts").fetchall()
    stored: dict[str, list[tuple[dt.datetime, int, int | None]]] = defaultdict(list)
    for code, ts, state, reason in rows:
        stored[code].append((ts, state, reason))
    return stored


def stored_counts(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.code, sum(c.good), sum(c.reject) FROM ts.production_count c "
            "JOIN mes.equipment e ON e.id = c.equipment_id GROUP BY e.code").fetchall()
    return {code: (int(good), int(reject)) for code, good, reject in rows}


def served_by_signal(history: list[ServedValue]) -> dict[str, list[tuple[dt.datetime, float]]]:
    served: dict[str, list[tuple[dt.datetime, float]]] = defaultdict(list)
    for code, when, value in history:
        served[code].append((when, value))
    return served


def last_served(history: list[ServedValue], code: str, before: dt.datetime | None = None
                ) -> int | float:
    values = [value for c, when, value in history
              if c == code and (before is None or when <= before)]
    return values[-1]


def quality_for(signal: PlantSignal, value: float) -> int:
    outside = ((signal.low_limit is not None and value < signal.low_limit)
               or (signal.high_limit is not None and value > signal.high_limit))
    return Quality.OUT_OF_RANGE if outside else Quality.GOOD


def assert_process_values_stored_as_served(url: str, history: list[ServedValue],
                                           signals: dict[str, PlantSignal],
                                           baseline_at: dt.datetime) -> int:
    """Every value served from the subscription's start on is stored once, with its source
    time and the quality its limits give; returns how many values were compared."""
    served = served_by_signal(history)
    stored = stored_process_values(url)
    compared = 0
    for signal in (s for s in signals.values() if s.kind == "process_value"):
        changes = served[signal.code]
        initial = [c for c in changes if c[0] <= baseline_at][-1]
        expected = [initial] + [c for c in changes if c[0] > baseline_at]
        assert [(ts, value) for ts, value, _ in stored[signal.code]] == expected, signal.code
        assert [q for _, _, q in stored[signal.code]] == [
            quality_for(signal, value) for _, value in expected], signal.code
        compared += len(expected)
    return compared


def counts_served(history: list[ServedValue], plant: PlantDefinition,
                  baseline_at: dt.datetime) -> dict[str, tuple[int, int]]:
    """Parts each machine made after `baseline_at`, by its served counters."""
    made = {}
    for machine in plant.machines:
        good, reject = (int(last_served(history, f"{machine.code}.{c}"))
                        - int(last_served(history, f"{machine.code}.{c}", before=baseline_at))
                        for c in ("good", "reject"))
        if good or reject:
            made[machine.code] = (good, reject)
    return made
