"""The batching writer: one bounded queue from all sources, flushed by size or time.

Sources hand over lists of readings without waiting on the database; one task conditions
them into rows and one worker thread stores each batch with binary COPY. While the
database is unreachable, batches go to the on-disk spool; the database is tried again on a
timer, and the spool replayed oldest first as soon as it is back. Collection gap records
travel with the batches. Reading the PLCs is the collectors' job.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from ingest.conditioning import CarryOver, Conditioner, GapRow, ProcessValueRow, Reading, Rows
from ingest.gaps import SPOOL_OVERFLOW
from ingest.health import Health
from ingest.spool import Spool, SpoolFull, encode
from ingest.store import act_as, write_rows, write_rows_once

log = logging.getLogger("mes.ingest.writer")

# Connection errors mean "try later"; any other database error means the batch itself
# is wrong, and retrying it would block everything behind it.
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)
_CHUNK = 1000
# How often the durable progress (the last data stored per source) is saved at most.
_PROGRESS_SECONDS = 0.5
# Readings handed over together, and what to call once they are durable.
_Item = tuple[list[Reading], Callable[[], None] | None]


class Writer:
    def __init__(self, url: str, spool: Spool, health: Health | None = None, *,
                 flush_rows: int, carry_over_path: Path | None = None,
                 flush_seconds: float = 0.05, max_queued: int = 1_000_000,
                 retry_seconds: float = 0.5, max_retry_seconds: float = 2.0,
                 role: str | None = None,
                 equipment_of: Mapping[int, int] | None = None,
                 on_durable: Callable[[dict[str, float]], None] | None = None) -> None:
        self.url = url
        self.role = role
        self.spool = spool
        self.health = health or Health()
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.max_queued = max_queued
        self._retry_seconds = retry_seconds
        self._max_retry_seconds = max_retry_seconds
        self._backoff = retry_seconds
        self._retry_at = 0.0
        self._carry_path = carry_over_path
        carry = CarryOver()
        if carry_over_path is not None and carry_over_path.exists():
            carry = CarryOver.from_json(json.loads(carry_over_path.read_text()))
        self._conditioner = Conditioner(carry)
        self._saved_carry = carry.to_json()
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._queued = 0
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        # One thread: batches reach the database in the order they were made.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mes-writer")
        self.recovered_at_start = (spool.rows, spool.batches)
        # Collection gap rows waiting for the next batch, and per source the wall-clock time
        # of its last readings handed over, and of those durably stored.
        self._records: list[GapRow] = []
        self._seen: dict[str, float] = {}
        self.durable: dict[str, float] = {}
        self._durable_saved = 0.0
        self._on_durable = on_durable
        # signal id -> equipment id, for the gaps of rows the spool could not take
        self._equipment_of = dict(equipment_of or {})
        self._overflow: dict[int, list[Any]] = {}  # equipment id -> [first, last] lost
        self._lost_gap_rows: list[GapRow] = []  # of batches the spool could not take
        self._sync_spool_health()

    def counter_times(self) -> dict[int, dt.datetime]:
        """signal id -> time of the reading each counter baseline comes from."""
        return dict(self._conditioner.carry_over().counter_at)

    @property
    def last_seen(self) -> dict[str, float]:
        """source -> wall-clock time of the last readings it handed over."""
        return dict(self._seen)

    # --- the sources' side ------------------------------------------------------------

    def submit(self, readings: list[Reading], done: Callable[[], None] | None = None) -> bool:
        """Hand over readings without waiting; False (and counted as dropped) if full.

        `done` is called (in the event loop) once the batch holding these readings is
        written, spooled or set aside as refused: when the source may forget them. It is
        never called for readings dropped here."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        if not readings:
            if done is not None:
                done()
            return True
        self._seen[readings[0].binding.source] = time.time()
        self.health.samples_received += len(readings)
        if self._queued + len(readings) > self.max_queued:
            self.health.samples_dropped += len(readings)
            log.error("writer queue full (%d readings): dropped %d readings",
                      self._queued, len(readings))
            return False
        self._queued += len(readings)
        self.health.queue_depth = self._queued
        self._queue.put_nowait((readings, done))
        return True

    def record(self, gaps: list[GapRow]) -> None:
        """Collection gap rows, stored with the next batch (or spooled with it)."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        if gaps:
            self._records += gaps
            self._queue.put_nowait(([], None))  # wakes the writer: a gap need not wait for data

    async def put(self, readings: list[Reading]) -> None:
        """Hand over readings, waiting while the queue is full (for polling sources)."""
        while not self._closed and self._queued + len(readings) > self.max_queued:
            await asyncio.sleep(self.flush_seconds)
        self.submit(readings)

    # --- the writer's side ------------------------------------------------------------

    async def run(self) -> None:
        """Condition and store until close(); every queued reading is handled first."""
        rows, batches = self.recovered_at_start
        if batches:
            log.warning("recovered %d rows in %d batches from the spool %s; replaying them",
                        rows, batches, self.spool.directory)
        loop = asyncio.get_running_loop()
        # Two batches in flight: the worker starts the next one the moment it finishes one.
        pending: collections.deque[asyncio.Future[None]] = collections.deque()
        try:
            # At once, not with the first data: the status then says whether the database
            # is there, and a spool left by the last run is replayed.
            await loop.run_in_executor(self._executor, self._store, [], [], {})
            while True:
                batch = await self._collect(pending)
                if batch is None:
                    break
                readings, gaps, seen, dones = batch
                if len(pending) == 2:
                    await pending.popleft()
                stored = loop.run_in_executor(self._executor, self._store, readings, gaps, seen)
                if dones:
                    stored.add_done_callback(functools.partial(_call_when_stored, dones))
                pending.append(stored)
            for future in pending:
                await future
            # A last attempt to empty the spool before stopping.
            await loop.run_in_executor(self._executor, self._store, [], self._take_records(),
                                       dict(self._seen))
            self._save_progress(force=True)
        finally:
            await loop.run_in_executor(self._executor, self._disconnect)
            self._executor.shutdown(wait=False)

    async def close(self) -> None:
        """Stop taking readings; run() returns once everything queued is stored or spooled."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    def _take_records(self) -> list[GapRow]:
        records, self._records = self._records, []
        return records

    def _waiting_for_database(self) -> bool:
        return bool(self.spool) or self.health.database == "unreachable" or bool(
            self._overflow) or bool(self._lost_gap_rows)

    async def _collect(self, pending: collections.deque[asyncio.Future[None]],
                       ) -> tuple[list[Reading], list[GapRow], dict[str, float],
                                  list[Callable[[], None]]] | None:
        first: _Item | None
        while True:
            if not self._waiting_for_database():
                first = await self._queue.get()
                break
            # Something waits for the database: try it on a timer, not only when new data
            # arrives, so the spool is replayed as soon as the server is back.
            try:
                async with asyncio.timeout(max(0.05, self._retry_at - time.monotonic())):
                    first = await self._queue.get()
                break
            except TimeoutError:
                if not pending or pending[-1].done():
                    await asyncio.get_running_loop().run_in_executor(
                        self._executor, self._store, [], self._take_records(), {})
        if first is None:
            return None
        readings = list(first[0])
        dones = [first[1]] if first[1] is not None else []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_seconds
        while len(readings) < self.flush_rows:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    async with asyncio.timeout(timeout):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            if item is None:
                self._queue.put_nowait(None)  # seen again by the next _collect: stop there
                break
            readings += item[0]
            if item[1] is not None:
                dones.append(item[1])
        self._queued -= len(readings)
        self.health.queue_depth = self._queued
        return readings, self._take_records(), dict(self._seen), dones

    # --- the worker thread ------------------------------------------------------------

    def _store(self, readings: list[Reading], gaps: list[GapRow],
               seen: dict[str, float]) -> None:
        started = time.perf_counter()
        rows = Rows(collection_gap=gaps)
        stream = self._conditioned(readings, rows)
        try:
            if self._database_ready():
                try:
                    self._replay()
                    conn = self._connection()  # also when there is nothing to write: a probe
                    self._write_overflow(conn)
                    if readings or rows:
                        write_rows(conn, rows, stream, self._save_carry)
                        self.health.rows_written += len(rows)
                    self._reachable()
                    self._durable(seen)
                    if len(rows):
                        self.health.last_flush_rows = len(rows)
                        self.health.last_flush_seconds = time.perf_counter() - started
                    return
                except _UNREACHABLE as exc:
                    self._unreachable(exc)
                except psycopg.Error as exc:
                    self._reject(rows, exc)
                    return
            for _ in stream:
                pass
            self._save_carry()
            if rows and self._to_spool(rows):
                self._durable(seen)
        finally:
            conditioner = self._conditioner
            refused = conditioner.refused - self.health.samples_refused
            self.health.samples_refused += refused
            self.health.samples_filtered += len(readings) - len(rows) - refused
            self.health.counter_discontinuities = dict(conditioner.discontinuities)
            self.health.unknown_states = dict(conditioner.unknown_states)
            self._sync_spool_health()

    def _durable(self, seen: dict[str, float]) -> None:
        if seen:
            self.durable.update(seen)
            self._save_progress()

    def _save_progress(self, force: bool = False) -> None:
        if self._on_durable is None or not self.durable:
            return
        now = time.monotonic()
        if force or now - self._durable_saved >= _PROGRESS_SECONDS:
            self._durable_saved = now
            self._on_durable(dict(self.durable))

    def _conditioned(self, readings: list[Reading], rows: Rows) -> Iterator[ProcessValueRow]:
        # Small chunks keep the server busy with one chunk while the next is conditioned.
        for start in range(0, len(readings), _CHUNK):
            made = len(rows.process_value)
            self._conditioner.condition(readings[start:start + _CHUNK], rows)
            yield from rows.process_value[made:]

    def _database_ready(self) -> bool:
        return self._conn is not None or time.monotonic() >= self._retry_at

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self.url, connect_timeout=3, application_name="mes collect")
            try:
                act_as(conn, self.role)
            except psycopg.errors.InsufficientPrivilege as exc:
                # Membership revoked while running: keep spooling until it is back.
                conn.close()
                raise psycopg.OperationalError(f"cannot act as {self.role}: {exc}") from exc
            self._conn = conn
        return self._conn

    def _replay(self) -> None:
        if not self.spool:
            return
        conn = self._connection()
        for batch in self.spool.batches_in_order():
            try:
                write_rows_once(conn, batch.rows)
            except _UNREACHABLE:
                raise
            except psycopg.Error as exc:
                # This batch, not the ones behind it, is what the database refuses.
                self._reject(batch.rows, exc)
                conn = self._connection()
            else:
                self.health.rows_written += len(batch.rows)
                self.health.rows_recovered += len(batch.rows)
            self.spool.remove(batch)
        log.warning("spool replayed: %d rows recovered so far", self.health.rows_recovered)

    def _reachable(self) -> None:
        if self.health.database != "connected":
            log.info("database connected")
        self.health.database = "connected"
        self._backoff = self._retry_seconds

    def _unreachable(self, exc: Exception) -> None:
        if self.health.database != "unreachable":
            log.warning("database unreachable (%s); spooling to %s",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc),
                        self.spool.directory)
        self.health.database = "unreachable"
        self._disconnect()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_retry_seconds)

    def _to_spool(self, rows: Rows) -> bool:
        try:
            self.spool.append(rows)
            self.health.rows_spooled += len(rows)
            return True
        except (SpoolFull, OSError) as exc:
            self.health.samples_dropped += len(rows)
            if not self._overflow:
                log.error("%s; collection gaps are recorded for the machines whose rows are "
                          "lost", exc)
            self._note_overflow(rows)
            return False

    def _note_overflow(self, rows: Rows) -> None:
        """Widen each machine's spool overflow gap over the rows that were lost."""
        lost: list[tuple[Any, int]] = [(r[0], r[1]) for r in rows.equipment_state]
        lost += [(r[0], r[1]) for r in rows.production_count]
        equipment_of = self._equipment_of
        lost += [(r[0], equipment_of[r[1]]) for r in rows.process_value if r[1] in equipment_of]
        for ts, equipment_id in lost:
            span = self._overflow.get(equipment_id)
            if span is None:
                self._overflow[equipment_id] = [ts, ts]
            else:
                span[0] = min(span[0], ts)
                span[1] = max(span[1], ts)
        # Gap rows of the batch itself are kept: they are few, and losing one would leave
        # a gap open or unrecorded for good.
        self._lost_gap_rows += rows.collection_gap

    def _write_overflow(self, conn: psycopg.Connection[Any]) -> None:
        if not self._overflow and not self._lost_gap_rows:
            return
        rows = Rows(collection_gap=[*self._lost_gap_rows, *(
            (first, equipment_id, "spool", SPOOL_OVERFLOW, last)
            for equipment_id, (first, last) in self._overflow.items())])
        write_rows(conn, rows)
        if self._overflow:
            log.warning("recorded spool overflow gaps for %d machines", len(self._overflow))
        self._overflow.clear()
        self._lost_gap_rows.clear()

    def _reject(self, rows: Rows, exc: psycopg.Error) -> None:
        # Kept beside the spool for inspection, never replayed.
        self._disconnect()
        self.health.samples_dropped += len(rows)
        rejected = self.spool.directory / f"rejected-{time.time_ns()}.json"
        rejected.write_bytes(encode(rows))
        log.error("the database refused a batch of %d rows (%s); kept in %s",
                  len(rows), str(exc).strip(), rejected)

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _save_carry(self) -> None:
        # Saved before the batch is durable: a crash in between loses that batch's parts
        # (the last unflushed interval) but never counts them twice.
        data = self._conditioner.carry_over().to_json()
        if self._carry_path is None or data == self._saved_carry:
            return
        temporary = self._carry_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(self._carry_path)
        self._saved_carry = data

    def _sync_spool_health(self) -> None:
        self.health.spool_bytes = self.spool.bytes
        self.health.spool_rows = self.spool.rows


def _call_when_stored(dones: list[Callable[[], None]], stored: asyncio.Future[None]) -> None:
    # Not when storing failed outright: the writer stops, and the sources must not forget
    # what they handed over.
    if not stored.cancelled() and stored.exception() is None:
        for done in dones:
            done()
