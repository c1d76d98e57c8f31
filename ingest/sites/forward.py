"""The site forwarder: new rows and fact changes of the site database, to the site's stream.

Each round fixes a batch at a snapshot (committed first), publishes the batch's messages
with ids JetStream deduplicates, and records the batch as published only after JetStream
acknowledged all of them. A crash in between publishes exactly the same messages again.
Collecting goes on without it: the site database is the backlog while NATS is away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
import psycopg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from psycopg import AsyncConnection

from ingest.aio import raise_if_cancelled, wait_or_stop
from ingest.sites import queries
from ingest.sites.streams import (
    BATCH,
    FACTS,
    FORWARDED_AT,
    MESSAGE,
    ROW_TABLES,
    ROWS,
    SiteStream,
    connect,
    stream_config,
)

log = logging.getLogger("mes.sites.forward")

_COPY_HEADER = 19  # PGCOPY signature, flags and header extension length
_COPY_TRAILER = b"\xff\xff"
# Fact changes are JSON rows of a few hundred bytes: fewer per message than time series,
# so a message stays well under NATS's default 1 MB limit.
FACT_ROWS = 500

# What "try again later" looks like from NATS and from the site database.
RETRYABLE = (OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error,
             psycopg.OperationalError, psycopg.InterfaceError)


@dataclass
class ForwarderHealth:
    state: str = "starting"
    nats: str = "unknown"
    batches: int = 0
    messages: int = 0
    rows: int = 0
    last_error: str | None = None
    last_published_at: float | None = None
    retries: int = 0


@dataclass(frozen=True)
class Message:
    kind: str
    payload: bytes
    rows: int


class Forwarder:
    def __init__(self, site_url: str, nats_url: str, site_code: str, *,
                 interval_seconds: float = 0.2, message_rows: int = 10_000,
                 stream_max_age_seconds: float = 7 * 86400, publish_timeout: float = 10,
                 in_flight: int = 32) -> None:
        self.site_url = site_url
        self.nats_url = nats_url
        self.stream = SiteStream(site_code)
        self.interval_seconds = interval_seconds
        self.message_rows = message_rows
        self.stream_max_age_seconds = stream_max_age_seconds
        self.publish_timeout = publish_timeout
        self.in_flight = in_flight
        self.health = ForwarderHealth()

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until `stop` is set; connection failures are retried with backoff."""
        backoff = 0.25
        while not stop.is_set():
            try:
                await self._session(stop)
                backoff = 0.25
            except RETRYABLE as exc:
                raise_if_cancelled()
                self._failed(exc)
                await wait_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def _session(self, stop: asyncio.Event) -> None:
        nc = await connect(self.nats_url, f"mes site forward {self.stream.code}",
                           self._nats_state)
        try:
            js = nc.jetstream(timeout=self.publish_timeout)
            await self._ensure_stream(js)
            async with await AsyncConnection.connect(
                    self.site_url, autocommit=True, connect_timeout=3,
                    application_name="mes site forward") as conn:
                self.health.state = "forwarding"
                while not stop.is_set():
                    rows = await self.forward_once(conn, js)
                    if rows < self.message_rows:
                        await wait_or_stop(stop, self.interval_seconds)
        finally:
            await nc.close()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = stream_config(self.stream, self.stream_max_age_seconds)
        try:
            await js.stream_info(self.stream.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", self.stream.name)

    async def forward_once(self, conn: AsyncConnection[Any], js: JetStreamContext) -> int:
        """Publish one batch; returns its rows (0: nothing new)."""
        at = await queries.position(conn, self.stream.code)
        if at.pending is None:
            at = await queries.start_batch(conn, self.stream.code, self.message_rows)
        assert at.pending is not None and at.pending_message_rows is not None
        number = at.next_message
        rows = 0
        waiting: list[tuple[int, asyncio.Future[PubAck]]] = []
        async for message in self._messages(conn, at):
            headers = {"Nats-Msg-Id": self.stream.message_id(number), MESSAGE: str(number),
                       BATCH: at.pending, ROWS: str(message.rows),
                       FORWARDED_AT: f"{time.time():.6f}"}
            future = await js.publish_async(self.stream.subject(message.kind), message.payload,
                                            headers=headers, stream=self.stream.name)
            waiting.append((number, future))
            number += 1
            rows += message.rows
            if len(waiting) >= self.in_flight:
                await self._acknowledged(waiting)
        await self._acknowledged(waiting)
        messages = number - at.next_message
        await queries.batch_published(conn, self.stream.code, at, messages)
        if messages:
            self.health.batches += 1
            self.health.messages += messages
            self.health.rows += rows
            self.health.last_published_at = time.time()
        self.health.state = "forwarding"
        return rows

    async def _acknowledged(self, waiting: list[tuple[int, asyncio.Future[PubAck]]]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout):
                for number, future in waiting:
                    ack = await future
                    if ack.stream != self.stream.name:
                        raise nats.js.errors.Error(
                            f"message {number} went to stream {ack.stream}, not "
                            f"{self.stream.name}")
        finally:
            for _, future in waiting:
                future.cancel()
            waiting.clear()

    async def _messages(self, conn: AsyncConnection[Any],
                        at: queries.Position) -> AsyncIterator[Message]:
        params = {"published": at.published, "pending": at.pending}
        async for message in self._facts(conn, params):
            yield message
        assert at.pending_message_rows is not None
        for table in ROW_TABLES:
            async for message in _row_messages(conn, table, params, at.pending_message_rows):
                yield message

    async def _facts(self, conn: AsyncConnection[Any],
                     params: dict[str, Any]) -> AsyncIterator[Message]:
        cursor = await conn.execute(queries.BATCH_FACTS, params)
        changes = await cursor.fetchall()
        for start in range(0, len(changes), FACT_ROWS):
            part = changes[start:start + FACT_ROWS]
            payload = "[" + ",".join(f"[{json.dumps(t)},{json.dumps(o)},{r}]"
                                     for t, o, r in part) + "]"
            yield Message(FACTS, payload.encode(), len(part))

    def _nats_state(self, state: str) -> None:
        if state != self.health.nats:
            log.info("NATS %s", state)
        self.health.nats = state

    def _failed(self, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.health.state != "waiting":
            log.warning("forwarding paused (%s); retrying", text)
        self.health.state = "waiting"
        self.health.last_error = text
        self.health.retries += 1


async def _row_messages(conn: AsyncConnection[Any], table: str, params: dict[str, Any],
                        message_rows: int) -> AsyncIterator[Message]:
    """One table's rows of a batch as binary COPY data, `message_rows` rows a message.

    The server sends one COPY data message per row (the first also carries the file
    header), so the rows are split without being decoded."""
    async with conn.cursor() as cursor, cursor.copy(queries.batch_rows_copy(table),
                                                    params) as copy:
        header = b""
        part = bytearray()
        count = 0
        async for data in copy:
            if not header:
                header, data = bytes(data[:_COPY_HEADER]), data[_COPY_HEADER:]
            if data == _COPY_TRAILER or not data:
                continue
            part += data
            count += 1
            if count == message_rows:
                yield Message(table, header + part + _COPY_TRAILER, count)
                part = bytearray()
                count = 0
        if count:
            yield Message(table, header + part + _COPY_TRAILER, count)

