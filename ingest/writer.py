"""The batching writer: one bounded queue from all sources, flushed by size or time.

Sources hand over lists of readings without waiting on the database; one task conditions
them into rows and one worker thread stores each batch with binary COPY. While the
database is unreachable, batches go to the on-disk spool and are replayed, oldest first,
when it is back. Reading the PLCs is the collectors' job.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from ingest.conditioning import CarryOver, Conditioner, ProcessValueRow, Reading, Rows
from ingest.health import Health
from ingest.spool import Spool, SpoolFull, encode
from ingest.store import act_as, write_rows, write_rows_once

log = logging.getLogger("mes.ingest.writer")

# Connection errors mean "try later"; any other database error means the batch itself
# is wrong, and retrying it would block everything behind it.
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)
_CHUNK = 1000


class Writer:
    def __init__(self, url: str, spool: Spool, health: Health | None = None, *,
                 flush_rows: int, carry_over_path: Path | None = None,
                 flush_seconds: float = 0.05, max_queued: int = 1_000_000,
                 retry_seconds: float = 1.0, max_retry_seconds: float = 5.0,
                 role: str | None = None) -> None:
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
        self._queue: asyncio.Queue[list[Reading] | None] = asyncio.Queue()
        self._queued = 0
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None
        # One thread: batches reach the database in the order they were made.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mes-writer")
        self.recovered_at_start = (spool.rows, spool.batches)
        self._sync_spool_health()

    # --- the sources' side ------------------------------------------------------------

    def submit(self, readings: list[Reading]) -> bool:
        """Hand over readings without waiting; False (and counted as dropped) if full."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        if not readings:
            return True
        self.health.samples_received += len(readings)
        if self._queued + len(readings) > self.max_queued:
            self.health.samples_dropped += len(readings)
            log.error("writer queue full (%d readings): dropped %d readings",
                      self._queued, len(readings))
            return False
        self._queued += len(readings)
        self.health.queue_depth = self._queued
        self._queue.put_nowait(readings)
        return True

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
            while True:
                readings = await self._collect()
                if readings is None:
                    break
                if len(pending) == 2:
                    await pending.popleft()
                pending.append(loop.run_in_executor(self._executor, self._store, readings))
            for future in pending:
                await future
            # A last attempt to empty the spool before stopping.
            await loop.run_in_executor(self._executor, self._store, [])
        finally:
            await loop.run_in_executor(self._executor, self._disconnect)
            self._executor.shutdown(wait=False)

    async def close(self) -> None:
        """Stop taking readings; run() returns once everything queued is stored or spooled."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    async def _collect(self) -> list[Reading] | None:
        first = await self._queue.get()
        if first is None:
            return None
        readings = list(first)
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
            readings += item
        self._queued -= len(readings)
        self.health.queue_depth = self._queued
        return readings

    # --- the worker thread ------------------------------------------------------------

    def _store(self, readings: list[Reading]) -> None:
        started = time.perf_counter()
        rows = Rows()
        stream = self._conditioned(readings, rows)
        try:
            if self._database_ready():
                try:
                    self._replay()
                    if readings:
                        write_rows(self._connection(), rows, stream, self._save_carry)
                        self.health.rows_written += len(rows)
                    self._reachable()
                    if rows:
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
            if rows:
                self._to_spool(rows)
        finally:
            refused = self._conditioner.refused - self.health.samples_refused
            self.health.samples_refused += refused
            self.health.samples_filtered += len(readings) - len(rows) - refused
            self._sync_spool_health()

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

    def _to_spool(self, rows: Rows) -> None:
        try:
            self.spool.append(rows)
            self.health.rows_spooled += len(rows)
        except (SpoolFull, OSError) as exc:
            self.health.samples_dropped += len(rows)
            log.error("%s", exc)

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
