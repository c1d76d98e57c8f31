"""Faults between a site and the central store: 0 rows lost and 0 stored twice, counted per
site, machine and minute on both sides, across a forwarder killed mid-batch, a NATS server
restart, the central database down for 30 s and a WAN cut of minutes, while the site keeps
storing rows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import nats.js.errors
import pytest

from ingest.sites.central import CentralIngest
from ingest.sites.forward import Forwarder
from mes import migrate
from mes.db import engine
from mes.localdb import LocalCluster
from mes.natsd import LocalNats, free_port
from tests.conftest import REPO, private_cluster
from tests.ingest.collecting import in_event_loop
from tests.sites.sites import (
    SiteWriter,
    central_counts,
    forwarded_messages,
    forwarding,
    new_site,
    site_counts,
    until_central_has,
    write_seconds,
)

pytestmark = pytest.mark.slow

CENTRAL_OUTAGE_SECONDS = 30
WAN_CUT_SECONDS = 150


def assert_same_on_both_sides(site: str, central: str, code: str) -> None:
    held = site_counts(site)
    assert held
    assert central_counts(central, code) == held
    published, applied = forwarded_messages(site, central, code)
    assert published == applied > 0


def _forwarder_process(site: str, nats_url: str, code: str,
                       message_rows: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MES_DATABASE_URL": site, "MES_NATS_URL": nats_url,
           "MES_FORWARD_MESSAGE_ROWS": str(message_rows), "MES_FORWARD_INTERVAL_MS": "50"}
    return subprocess.Popen([sys.executable, "-m", "mes.cli", "site", "forward", "--site", code],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def central_ingest(url: str, nats_url: str) -> AsyncIterator[CentralIngest]:
    stop = asyncio.Event()
    ingest = CentralIngest(url, nats_url, rescan_seconds=0.5)
    task = asyncio.create_task(ingest.run(stop))
    try:
        yield ingest
    finally:
        stop.set()
        await task


async def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    for _ in range(int(timeout * 20)):
        if await asyncio.to_thread(condition):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"after {timeout} s still not: {what}")


async def _stream_messages(nats_url: str, code: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(f"MES_SITE_{code}")
        return int(info.state.messages)
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


@in_event_loop
async def test_a_forwarder_killed_mid_batch_resends_exactly_what_was_not_recorded(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    backlog = write_seconds(site, 0, 3600)
    forwarder = _forwarder_process(site, nats_server.url, "A", message_rows=50)
    try:
        for _ in range(600):
            if await _stream_messages(nats_server.url, "A") >= 100:
                break
            await asyncio.sleep(0.02)
        forwarder.send_signal(signal.SIGKILL)
        forwarder.wait()
    finally:
        forwarder.kill()
    # Killed mid-batch: part of the first batch is in the stream, none of it recorded.
    in_stream = await _stream_messages(nats_server.url, "A")
    assert in_stream >= 100
    assert forwarded_messages(site, central, "A")[0] == 0
    assert backlog / 50 > in_stream

    async with central_ingest(central, nats_server.url):
        with SiteWriter(site, first=3600) as writer:
            forwarder = _forwarder_process(site, nats_server.url, "A", message_rows=50)
            await asyncio.sleep(2)
        try:
            await until_central_has(central, backlog + writer.rows, 120)
        finally:
            forwarder.send_signal(signal.SIGTERM)
            forwarder.wait(timeout=30)

    assert_same_on_both_sides(site, central, "A")


@in_event_loop
async def test_a_nats_server_restart_loses_and_repeats_nothing(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    async with forwarding({"A": site}, central, nats_server.url, message_rows=200) as (
            forwarders, ingest):
        with SiteWriter(site) as writer:
            await asyncio.sleep(2)
            await asyncio.to_thread(nats_server.stop)
            await asyncio.sleep(3)
            assert forwarders["A"].health.nats == "disconnected"
            await asyncio.to_thread(nats_server.start)
            await asyncio.sleep(3)
        await until_central_has(central, writer.rows, 60)
        assert ingest.health.nats == "connected"

    assert_same_on_both_sides(site, central, "A")


@pytest.fixture
def central_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """The central store in a cluster of its own, so it can be stopped."""
    with private_cluster(tmp_path / ".mes-central", database="central") as cluster:
        yield cluster


@in_event_loop
async def test_the_central_database_down_for_30_s_loses_and_repeats_nothing(
        databases: Callable[[], str], nats_server: LocalNats,
        central_cluster: LocalCluster) -> None:
    site, central = databases(), central_cluster.url()
    migrate.upgrade(central)
    engine(central).dispose()
    new_site(site)
    async with forwarding({"A": site}, central, nats_server.url, message_rows=200) as (
            forwarders, ingest):
        with SiteWriter(site) as writer:
            await asyncio.sleep(2)
            await asyncio.to_thread(central_cluster.down)
            await asyncio.sleep(CENTRAL_OUTAGE_SECONDS)
            # The site went on forwarding into the stream meanwhile.
            assert forwarders["A"].health.state == "forwarding"
            assert ingest.health.database == "unreachable"
            await asyncio.to_thread(central_cluster.up)
            await asyncio.sleep(2)
        await until_central_has(central, writer.rows, 60)

    assert_same_on_both_sides(site, central, "A")


class WanLink:
    """A TCP proxy standing for the WAN between a site and the NATS server: cut() drops
    every connection through it and refuses new ones until restore()."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self._pipes: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def __aenter__(self) -> WanLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.open = False
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    def restore(self) -> None:
        self.open = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer),
                             self._pipe(upstream_reader, writer), return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self._pipes.discard(writer)


@in_event_loop
async def test_a_wan_cut_of_minutes_is_caught_up_without_loss_or_repeat(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    stop = asyncio.Event()
    async with WanLink(nats_server.port) as wan, central_ingest(central, nats_server.url):
        forwarder = Forwarder(site, wan.url, "A", interval_seconds=0.05, message_rows=200)
        task = asyncio.create_task(forwarder.run(stop))
        try:
            with SiteWriter(site) as writer:
                await asyncio.sleep(2)
                wan.cut()
                await asyncio.sleep(WAN_CUT_SECONDS)
                assert forwarder.health.state == "waiting"
                backlog = writer.rows - await asyncio.to_thread(
                    lambda: sum(c for c, _ in central_counts(central, "A").values()))
                assert backlog > 0
                wan.restore()
                await asyncio.sleep(2)
            await until_central_has(central, writer.rows, 60)
        finally:
            stop.set()
            await task

    assert_same_on_both_sides(site, central, "A")
