"""Runs the collectors of one tag map and the writer they feed, until asked to stop.

On start the tag map is checked against the plant's signals (from the database, or from
the copy saved at the last start when the database is away). On stop every queued reading
is stored or spooled before returning. The command line wraps this; it holds no SQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ingest.aio import stop_on_signals
from ingest.files import CollectorFiles as CollectorFiles
from ingest.gaps import GapKeeper, RunRecord, resume
from ingest.health import Health, write_signals, write_status
from ingest.modbus import ModbusCollector
from ingest.mqtt import CollectorPaths, MqttCollector
from ingest.opcua import OpcUaCollector
from ingest.spool import Spool
from ingest.store import act_as, load_signal_map
from ingest.tagmap import PlantSignal, TagMap, read_tag_map
from ingest.writer import Writer
from transactional.errors import MesError

log = logging.getLogger("mes.ingest")


class CollectError(MesError):
    """The collector cannot start; the message says why and what to do."""


def plant_signals(url: str, files: CollectorFiles, role: str | None = None, *,
                  keep_copy: bool = True) -> dict[str, PlantSignal]:
    """The plant's signals from the database, else from the copy kept at the last start.

    With `role`, they are read acting as that role, as the writer will write: a login that
    may not act as it is refused here, before anything is collected.
    """
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            try:
                act_as(conn, role)
            except psycopg.errors.InsufficientPrivilege:
                user = conn.info.user
                raise CollectError(
                    f"the database login {user!r} may not act as {role!r}, which the "
                    f"collector writes as: GRANT {role} TO {user}") from None
            signals = load_signal_map(conn)
    except psycopg.OperationalError as exc:
        if not files.signal_map.exists():
            raise CollectError(
                f"cannot check the tag map: the database is unreachable ({exc}) and there "
                f"is no saved signal map in {files.directory} from an earlier start") from None
        log.warning("database unreachable; checking the tag map against the signal map "
                    "saved in %s", files.signal_map)
        saved = json.loads(files.signal_map.read_text())
        return {code: _saved_signal(fields) for code, fields in saved.items()}
    if not keep_copy:
        return signals
    files.directory.mkdir(parents=True, exist_ok=True)
    temporary = files.signal_map.with_suffix(".tmp")
    temporary.write_text(json.dumps({code: asdict(s) for code, s in signals.items()}))
    temporary.replace(files.signal_map)
    return signals


def _saved_signal(fields: dict[str, Any]) -> PlantSignal:
    codes = fields.get("state_codes")
    return PlantSignal(**{**fields, "state_codes": None if codes is None else tuple(codes)})


def load_tag_map(path: Path, url: str, files: CollectorFiles, role: str | None = None, *,
                 keep_copy: bool = True) -> TagMap:
    return read_tag_map(path, plant_signals(url, files, role, keep_copy=keep_copy))


def check_tag_map_file(tag_map_path: Path, url: str, files: CollectorFiles,
                       role: str | None) -> tuple[str, bool]:
    """What `mes collect --check` does: the table of every address read once, and whether
    all of them were good. Stores nothing, not even the signal map copy."""
    from ingest.check import check_tag_map, render

    quiet_libraries()
    tag_map = load_tag_map(tag_map_path, url, files, role, keep_copy=False)
    lines = asyncio.run(check_tag_map(tag_map))
    return render(lines), all(line.ok for line in lines)


@dataclass
class Collection:
    """A running collection: the writer, the collectors, and what they report."""

    writer: Writer
    opcua: list[OpcUaCollector]
    modbus: list[ModbusCollector]
    health: Health
    gaps: GapKeeper
    mqtt: list[MqttCollector] = field(default_factory=list)

    @property
    def gap_sources(self) -> list[str]:
        """The names collection gaps and durable progress are kept under."""
        return ([c.name for c in self.opcua] + [c.name for c in self.modbus]
                + [s for c in self.mqtt for s in c.gap_sources])


def run_record(files: CollectorFiles) -> RunRecord:
    return RunRecord(marker=files.run_marker, progress=files.progress)


def machines_by_source(tag_map: TagMap) -> dict[str, dict[int, str]]:
    """source name -> {equipment id: machine code} of the signals it delivers."""
    machines: dict[str, dict[int, str]] = {}
    for binding in tag_map.bindings:
        machines.setdefault(binding.source, {})[binding.signal.equipment_id] = (
            binding.signal.equipment_code)
    return machines


def build(tag_map: TagMap, url: str, files: CollectorFiles, *, spool_max_bytes: int,
          flush_rows: int, flush_seconds: float = 0.05,
          role: str | None = None) -> Collection:
    health = Health()
    files.directory.mkdir(parents=True, exist_ok=True)
    record = run_record(files)
    writer = Writer(url, Spool(files.spool, spool_max_bytes), health,
                    carry_over_path=files.carry_over, flush_rows=flush_rows,
                    flush_seconds=flush_seconds, role=role,
                    equipment_of={b.signal.signal_id: b.signal.equipment_id
                                  for b in tag_map.bindings},
                    on_durable=record.write_progress)
    gaps = GapKeeper(writer, machines_by_source(tag_map))
    return Collection(
        writer=writer,
        opcua=[OpcUaCollector(source, writer, health, gaps=gaps) for source in tag_map.opcua],
        modbus=[ModbusCollector(device, writer, health, gaps=gaps)
                for device in tag_map.modbus],
        health=health,
        gaps=gaps,
        mqtt=[MqttCollector(source, writer, health, gaps=gaps, paths=CollectorPaths(
            files.sparkplug_births, files.rejected_messages)) for source in tag_map.mqtt],
    )


async def run(collection: Collection, stop: asyncio.Event, files: CollectorFiles | None = None,
              *, status_seconds: float = 1.0, log_seconds: float = 10.0,
              on_status: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
              ) -> None:
    """Collect until `stop` is set, then store or spool everything still queued.

    With `files`, the gaps of the previous run are taken over (a crash is found by the run
    marker it left) and a clean stop records its own gaps for the next start to close."""
    writer = collection.writer
    record = run_record(files) if files is not None else None
    if record is not None:
        writer.durable.update(resume(collection.gaps, record, collection.gap_sources))
        record.started()
    async with asyncio.TaskGroup() as group:
        writing = group.create_task(writer.run())
        runners: list[Callable[[], Coroutine[Any, Any, None]]] = [
            *(c.run for c in collection.opcua), *(c.run for c in collection.modbus),
            *(c.run for c in collection.mqtt)]
        source_tasks = [group.create_task(run_source()) for run_source in runners]
        reporting = group.create_task(_report(collection, files, status_seconds,
                                              log_seconds, on_status))
        await stop.wait()
        for task in source_tasks:
            task.cancel()
        await asyncio.gather(*source_tasks, return_exceptions=True)
        if record is not None:
            collection.gaps.stopping(writer.last_seen)
        await writer.close()
        await writing
        reporting.cancel()
    health = collection.health
    health.running = False
    health.open_gaps = collection.gaps.open_sources
    for name in health.sources:
        health.sources[name] = "stopped"
    if files is not None and record is not None:
        record.write_progress(writer.durable, stopped_at=time.time())
        record.stopped()
        write_status(files.status, health, None)


async def _report(collection: Collection, files: CollectorFiles | None,
                  status_seconds: float, log_seconds: float,
                  on_status: Callable[[dict[str, Any]], Awaitable[None] | None] | None) -> None:
    health = collection.health
    previous: dict[str, Any] | None = None
    logged = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(status_seconds)
        health.open_gaps = collection.gaps.open_sources
        if files is not None:
            previous = write_status(files.status, health, previous)
            write_signals(files.signals, [*collection.opcua, *collection.modbus,
                                          *collection.mqtt])
        else:
            snapshot = health.snapshot()
            previous = snapshot
        if on_status is not None:
            result = on_status(previous)
            if result is not None:
                await result
        if loop.time() - logged >= log_seconds:
            logged = loop.time()
            log.info("received %s/s, written %s/s, queue %d, spool %d rows, database %s",
                     previous.get("received_per_second", "-"),
                     previous.get("written_per_second", "-"), health.queue_depth,
                     health.spool_rows, health.database)


def quiet_libraries() -> None:
    """One log line per event: the collectors report each lost connection once, with its
    source and reason, so the protocol libraries' own reports of it (asyncua logs every
    session step and a traceback per lost server, pymodbus each failed connect) are kept
    to what they find fatal."""
    for library in ("asyncua", "pymodbus", "paho"):
        logging.getLogger(library).setLevel(logging.CRITICAL)


async def run_until_signalled(tag_map_path: Path, url: str, files: CollectorFiles, *,
                              spool_max_bytes: int, flush_rows: int, flush_seconds: float,
                              role: str | None) -> None:
    """What `mes collect` does: check the tag map, collect, stop cleanly on a signal."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_libraries()
    tag_map = load_tag_map(tag_map_path, url, files, role)
    collection = build(tag_map, url, files, spool_max_bytes=spool_max_bytes,
                       flush_rows=flush_rows, flush_seconds=flush_seconds, role=role)
    rows, batches = collection.writer.recovered_at_start
    log.info("collecting %d signals from %d OPC UA servers, %d Modbus devices and %d MQTT "
             "brokers; %d rows in %d batches recovered from the spool", tag_map.signal_count,
             len(tag_map.opcua), len(tag_map.modbus), len(tag_map.mqtt), rows, batches)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run(collection, stop, files)
    health = collection.health
    log.info("stopped: %d rows written, %d spooled, %d still in the spool, %d dropped",
             health.rows_written, health.rows_spooled, health.spool_rows,
             health.samples_dropped)
