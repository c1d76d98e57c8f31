"""The central ingest: each site's stream, through a durable pull consumer, into the central
store, acknowledged only after the central commit.

Messages are applied strictly in their per-site order: the number of the last one applied
is stored in the same transaction as its rows, so a redelivered message is acknowledged
without being stored again, and one that arrives before its predecessor waits for it. The
sites' own databases and the streams are never changed from here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import nats.errors
import nats.js.errors
import psycopg
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from psycopg import AsyncConnection

from ingest.aio import raise_if_cancelled, wait_or_stop
from ingest.sites import queries
from ingest.sites.streams import FACTS, MESSAGE, ROW_TABLES, SiteStream, connect

log = logging.getLogger("mes.sites.central")

DURABLE = "mes-central"
_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)
_NATS_TROUBLE = (OSError, TimeoutError, nats.errors.Error, nats.js.errors.Error)


@dataclass
class SiteHealth:
    messages: int = 0
    rows: int = 0
    replays: int = 0
    out_of_order: int = 0
    last_message: int = 0
    last_lag_seconds: float | None = None


@dataclass
class CentralHealth:
    database: str = "unknown"
    nats: str = "unknown"
    last_error: str | None = None
    sites: dict[str, SiteHealth] = field(default_factory=dict)


class CentralIngest:
    def __init__(self, central_url: str, nats_url: str, sites: tuple[str, ...] = (), *,
                 fetch_messages: int = 64, ack_wait_seconds: float = 30,
                 rescan_seconds: float = 5) -> None:
        self.central_url = central_url
        self.nats_url = nats_url
        self.only_sites = sites
        self.fetch_messages = fetch_messages
        self.ack_wait_seconds = ack_wait_seconds
        self.rescan_seconds = rescan_seconds
        self.health = CentralHealth()

    async def run(self, stop: asyncio.Event) -> None:
        """Ingest every site's stream (or only `sites`) until `stop` is set."""
        backoff = 0.25
        while not stop.is_set():
            try:
                nc = await connect(self.nats_url, "mes central ingest", self._nats_state)
            except _NATS_TROUBLE as exc:
                raise_if_cancelled()
                self.trouble("nats", exc)
                await wait_or_stop(stop, backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.25
            try:
                await self._sites(nc.jetstream(), stop)
            finally:
                await nc.close()

    async def _sites(self, js: JetStreamContext, stop: asyncio.Event) -> None:
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                try:
                    for stream in await self._streams(js):
                        task = tasks.get(stream.code)
                        if task is None or task.done():
                            tasks[stream.code] = asyncio.create_task(
                                self._site(js, stream, stop), name=f"central {stream.code}")
                except _NATS_TROUBLE as exc:
                    raise_if_cancelled()
                    self.trouble("nats", exc)
                await wait_or_stop(stop, self.rescan_seconds)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _streams(self, js: JetStreamContext) -> list[SiteStream]:
        if self.only_sites:
            return [SiteStream(code) for code in self.only_sites]
        found = []
        for info in await js.streams_info():
            stream = SiteStream.from_name(info.config.name or "")
            if stream is not None:
                found.append(stream)
        return found

    async def _site(self, js: JetStreamContext, stream: SiteStream, stop: asyncio.Event) -> None:
        health = self.health.sites.setdefault(stream.code, SiteHealth())
        config = api.ConsumerConfig(
            durable_name=DURABLE, ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL, ack_wait=self.ack_wait_seconds,
            max_deliver=-1, max_ack_pending=4 * self.fetch_messages,
            filter_subject=stream.subjects)
        store = _SiteStore(self, stream, health)
        while not stop.is_set():
            try:
                subscription = await js.pull_subscribe(stream.subjects, durable=DURABLE,
                                                       stream=stream.name, config=config)
                while not stop.is_set():
                    try:
                        messages = await subscription.fetch(self.fetch_messages, timeout=1)
                    except nats.errors.TimeoutError:
                        continue
                    self.health.nats = "connected"
                    await store.apply(messages, stop)
            except _NATS_TROUBLE as exc:
                raise_if_cancelled()
                self.trouble("nats", exc)
                await wait_or_stop(stop, 1)
            finally:
                await store.close()

    def _nats_state(self, state: str) -> None:
        self.health.nats = state

    def trouble(self, where: str, exc: BaseException) -> None:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if getattr(self.health, where) != "unreachable":
            log.warning("%s unreachable (%s); retrying", where, text)
        setattr(self.health, where, "unreachable")
        self.health.last_error = text


class _SiteStore:
    """One site's messages into the central database, in order, each stored once."""

    def __init__(self, ingest: CentralIngest, stream: SiteStream, health: SiteHealth) -> None:
        self.ingest = ingest
        self.stream = stream
        self.health = health
        self.conn: AsyncConnection[Any] | None = None
        self.site_id: int | None = None
        self.facts: dict[str, queries.FactTable] = {}
        self.waiting_for: int | None = None

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def apply(self, messages: list[Msg], stop: asyncio.Event) -> None:
        """Store the messages and acknowledge them; keep them (in progress) while the
        central database is away."""
        backoff = 0.25
        kept_alive = time.monotonic()
        while True:
            try:
                done, later = await self._store(messages)
                break
            except _UNREACHABLE as exc:
                raise_if_cancelled()
                self.ingest.trouble("database", exc)
                await self.close()
            except psycopg.Error as exc:
                # Not the connection: the central store refuses the message itself (a
                # schema behind the sites', say). Kept in order and retried, never skipped.
                log.error("site %s: the central store refuses message(s) %s: %s",
                          self.stream.code, [_number(m) for m in messages], exc)
                self.ingest.health.last_error = str(exc)
                await self.close()
            if stop.is_set():
                return  # not acknowledged: redelivered to the next run
            if time.monotonic() - kept_alive > self.ingest.ack_wait_seconds / 3:
                # Tell JetStream they are being worked on, so they are not redelivered.
                for message in messages:
                    await message.in_progress()
                kept_alive = time.monotonic()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        self.ingest.health.database = "connected"
        for message in done:
            await message.ack()
        for message in later:
            # Its predecessor is still on the way (redelivered after a restart): later.
            await message.nak(delay=1)
        self.health.out_of_order += len(later)

    async def _connection(self) -> AsyncConnection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = await AsyncConnection.connect(
                self.ingest.central_url, connect_timeout=3,
                application_name=f"mes central ingest {self.stream.code}")
            self.facts = await queries.fact_tables(self.conn)
            await self.conn.commit()
            async with self.conn.transaction():
                await self.conn.execute(queries.REGISTER_SITE, (self.stream.code,))
                cursor = await self.conn.execute(queries.SITE_ID, (self.stream.code,))
                row = await cursor.fetchone()
            assert row is not None
            self.site_id = int(row[0])
        return self.conn

    async def _store(self, messages: list[Msg]) -> tuple[list[Msg], list[Msg]]:
        conn = await self._connection()
        site_id = self.site_id
        assert site_id is not None
        done: list[Msg] = []
        later: list[Msg] = []
        stored = rows = replays = 0
        stream_sequence = None
        lag = None
        async with conn.transaction():
            await conn.execute(queries.SET_SITE, (str(site_id),))
            await conn.execute(queries.LOCK_POSITION, {"site": site_id})
            cursor = await conn.execute(queries.POSITION_FOR_UPDATE, (site_id,))
            row = await cursor.fetchone()
            assert row is not None
            last = first = int(row[0])
            for message in sorted(messages, key=_number):
                number = _number(message)
                if number <= last:
                    replays += 1
                    done.append(message)
                    continue
                if number != last + 1:
                    later.append(message)
                    if self.waiting_for != last + 1:
                        log.warning(
                            "site %s: message %d arrived before %d; waiting for it (it is "
                            "redelivered after a restart, unless the stream no longer keeps "
                            "it)", self.stream.code, number, last + 1)
                        self.waiting_for = last + 1
                    continue
                rows += await self._write(conn, site_id, message)
                last = number
                stream_sequence = message.metadata.sequence.stream
                stored += 1
                done.append(message)
                forwarded_at = (message.headers or {}).get("Mes-Forwarded-At")
                lag = time.time() - float(forwarded_at) if forwarded_at else lag
            if last != first:
                await conn.execute(queries.SET_POSITION, (last, stream_sequence, site_id))
        self.health.messages += stored
        self.health.rows += rows
        self.health.replays += replays
        self.health.last_message = last
        if lag is not None:
            self.health.last_lag_seconds = lag
        return done, later

    async def _write(self, conn: AsyncConnection[Any], site_id: int, message: Msg) -> int:
        kind = message.subject.rsplit(".", 1)[1]
        if kind == FACTS:
            return await self._write_facts(conn, site_id, message.data)
        if kind not in ROW_TABLES:
            raise psycopg.DataError(f"message {_number(message)}: unknown kind {kind!r}")
        try:
            async with conn.transaction(), conn.cursor() as cursor, cursor.copy(
                    queries.central_rows_copy(kind)) as copy:
                await copy.write(message.data)
        except psycopg.errors.UniqueViolation:
            # Some rows are here already (a site that forwarded its history again):
            # store the others.
            create, copy_in, insert = queries.central_rows_staging(kind)
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.execute(create)
                async with cursor.copy(copy_in) as copy:
                    await copy.write(message.data)
                await cursor.execute(insert)
        return int((message.headers or {}).get("Mes-Rows", 0))

    async def _write_facts(self, conn: AsyncConnection[Any], site_id: int,
                           payload: bytes) -> int:
        changes = json.loads(payload)
        # Runs of the same table and operation in one statement each, in the order made;
        # within a run only a key's last change counts (one statement cannot touch a row
        # twice).
        for (table, operation), run in groupby(changes, key=lambda c: (c[0], c[1])):
            fact = self.facts[table]
            latest: dict[tuple[Any, ...], Any] = {}
            for _, _, row in run:
                latest[tuple(row[k] for k in fact.key)] = row
            statement = fact.upsert() if operation == "upsert" else fact.delete()
            await conn.execute(statement, {"site": site_id,
                                           "rows": json.dumps(list(latest.values()))})
        return len(changes)


async def deliver_again(nats_url: str, code: str) -> bool:
    """Have the site's whole stream delivered to the central store again (its consumer is
    removed; the next run starts at the stream's beginning and skips what is stored).
    False when there was no consumer."""
    nc = await connect(nats_url, "mes central replay")
    try:
        return bool(await nc.jetstream().delete_consumer(SiteStream(code).name, DURABLE))
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()


def _number(message: Msg) -> int:
    return int((message.headers or {})[MESSAGE])

