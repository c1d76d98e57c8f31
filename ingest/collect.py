"""Runs the collectors of one tag map and the writer they feed, until asked to stop.

On start the tag map is checked against the plant's signals (from the database, or from
the copy saved at the last start when the database is away). On stop every queued reading
is stored or spooled before returning. The command line wraps this; it holds no SQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from ingest.health import Health, write_status
from ingest.modbus import ModbusCollector
from ingest.opcua import OpcUaCollector
from ingest.spool import Spool
from ingest.store import act_as, load_signal_map
from ingest.tagmap import PlantSignal, TagMap, read_tag_map
from ingest.writer import Writer
from transactional.errors import MesError

log = logging.getLogger("mes.ingest")


class CollectError(MesError):
    """The collector cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class CollectorFiles:
    """The collector's folder: spool, counter baselines, signal map copy, status."""

    directory: Path

    @property
    def spool(self) -> Path:
        return self.directory / "spool"

    @property
    def carry_over(self) -> Path:
        return self.directory / "carry_over.json"

    @property
    def signal_map(self) -> Path:
        return self.directory / "signal_map.json"

    @property
    def status(self) -> Path:
        return self.directory / "status.json"


def plant_signals(url: str, files: CollectorFiles,
                  role: str | None = None) -> dict[str, PlantSignal]:
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
        return {code: PlantSignal(**fields) for code, fields in saved.items()}
    files.directory.mkdir(parents=True, exist_ok=True)
    temporary = files.signal_map.with_suffix(".tmp")
    temporary.write_text(json.dumps({code: asdict(s) for code, s in signals.items()}))
    temporary.replace(files.signal_map)
    return signals


def load_tag_map(path: Path, url: str, files: CollectorFiles,
                 role: str | None = None) -> TagMap:
    return read_tag_map(path, plant_signals(url, files, role))


@dataclass
class Collection:
    """A running collection: the writer, the collectors, and what they report."""

    writer: Writer
    opcua: list[OpcUaCollector]
    modbus: list[ModbusCollector]
    health: Health


def build(tag_map: TagMap, url: str, files: CollectorFiles, *, spool_max_bytes: int,
          flush_rows: int, flush_seconds: float = 0.05,
          role: str | None = None) -> Collection:
    health = Health()
    writer = Writer(url, Spool(files.spool, spool_max_bytes), health,
                    carry_over_path=files.carry_over, flush_rows=flush_rows,
                    flush_seconds=flush_seconds, role=role)
    return Collection(
        writer=writer,
        opcua=[OpcUaCollector(source, writer, health) for source in tag_map.opcua],
        modbus=[ModbusCollector(device, writer, health) for device in tag_map.modbus],
        health=health,
    )


async def run(collection: Collection, stop: asyncio.Event, files: CollectorFiles | None = None,
              *, status_seconds: float = 1.0, log_seconds: float = 10.0,
              on_status: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
              ) -> None:
    """Collect until `stop` is set, then store or spool everything still queued."""
    writer = collection.writer
    async with asyncio.TaskGroup() as group:
        writing = group.create_task(writer.run())
        runners: list[Callable[[], Coroutine[Any, Any, None]]] = [
            *(c.run for c in collection.opcua), *(c.run for c in collection.modbus)]
        sources = [group.create_task(run_source()) for run_source in runners]
        reporting = group.create_task(_report(collection.health, files, status_seconds,
                                              log_seconds, on_status))
        await stop.wait()
        for task in sources:
            task.cancel()
        await asyncio.gather(*sources, return_exceptions=True)
        await writer.close()
        await writing
        reporting.cancel()
    collection.health.running = False
    for name in collection.health.sources:
        collection.health.sources[name] = "stopped"
    if files is not None:
        write_status(files.status, collection.health, None)


async def _report(health: Health, files: CollectorFiles | None, status_seconds: float,
                  log_seconds: float,
                  on_status: Callable[[dict[str, Any]], Awaitable[None] | None] | None) -> None:
    previous: dict[str, Any] | None = None
    logged = 0.0
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(status_seconds)
        if files is not None:
            previous = write_status(files.status, health, previous)
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


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop: everything queued is flushed first."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)


async def run_until_signalled(tag_map_path: Path, url: str, files: CollectorFiles, *,
                              spool_max_bytes: int, flush_rows: int, flush_seconds: float,
                              role: str | None) -> None:
    """What `mes collect` does: check the tag map, collect, stop cleanly on a signal."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # it logs every session step
    tag_map = load_tag_map(tag_map_path, url, files, role)
    collection = build(tag_map, url, files, spool_max_bytes=spool_max_bytes,
                       flush_rows=flush_rows, flush_seconds=flush_seconds, role=role)
    rows, batches = collection.writer.recovered_at_start
    log.info("collecting %d signals from %d OPC UA servers and %d Modbus devices; "
             "%d rows in %d batches recovered from the spool", tag_map.signal_count,
             len(tag_map.opcua), len(tag_map.modbus), rows, batches)
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run(collection, stop, files)
    health = collection.health
    log.info("stopped: %d rows written, %d spooled, %d still in the spool, %d dropped",
             health.rows_written, health.rows_spooled, health.spool_rows,
             health.samples_dropped)
