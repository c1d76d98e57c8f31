"""The database goes away mid-ingest and comes back: nothing lost, nothing stored twice.

This test runs its own PostgreSQL cluster (started and stopped by the project's code), so
stopping it for 30 s does not disturb the other tests' server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from mes import migrate
from mes.localdb import LocalCluster
from tests.conftest import private_cluster
from tests.ingest.collecting import (
    assert_process_values_stored_as_served,
    collecting,
    counts_served,
    eventually,
    in_event_loop,
    load_sample_plant,
    stored_counts,
    tag_map_from,
)

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 30


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with private_cluster(tmp_path / ".mes") as cluster:
        yield cluster


@in_event_loop
async def test_a_30_s_database_outage_loses_no_sample_and_stores_none_twice(
        own_cluster: LocalCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = own_cluster.url()
    migrate.upgrade(url)
    plant, signals = load_sample_plant(url)
    async with Simulator(plant, seed=11, speed=5, opcua_port=0, modbus_port=None,
                         record=True) as simulator:
        simulator.pause()
        assert simulator.opcua_port is not None
        tag_map = tag_map_from(simulator_tag_map(
            plant, opcua_port=simulator.opcua_port, protocols=("opcua",),
            publishing_interval_ms=50), tmp_path, signals)
        async with collecting(tag_map, url, tmp_path / "collect") as collection:
            health = collection.health
            await eventually(collection.opcua[0].connected.is_set, 15, "subscribed")
            await asyncio.sleep(0.5)
            baseline_at = dt.datetime.now(dt.UTC)
            simulator.resume()
            await asyncio.sleep(3)
            written_before = health.rows_written
            await asyncio.to_thread(own_cluster.down)
            await eventually(lambda: health.database == "unreachable", 10,
                             "the writer noticed the outage")
            await asyncio.sleep(OUTAGE_SECONDS)
            spooled = health.spool_rows
            written_during = health.rows_written - written_before
            await asyncio.to_thread(own_cluster.up)
            back = time.monotonic()
            await eventually(lambda: health.spool_rows == 0 and health.database == "connected",
                             30, "the spool was replayed")
            replayed = time.monotonic() - back
            await asyncio.sleep(2)
            simulator.pause()
            await asyncio.sleep(0.5)
        assert health.samples_dropped == 0
    with capsys.disabled():
        # Data keeps coming here; that the writer retries on its own timer, without new
        # data, is tested in test_writer.py.
        print(f"\ndatabase back -> {spooled} spooled rows replayed: {replayed:.1f} s")
    assert spooled > 20_000  # 30 s of the plant at speed 5
    assert written_during < 2_000  # at most the batch in flight when the server stopped
    assert health.rows_recovered == health.rows_spooled >= spooled

    history = list(simulator.history)
    assert assert_process_values_stored_as_served(url, history, signals, baseline_at) > 20_000
    made = counts_served(history, plant, baseline_at)
    assert sum(good for good, _ in made.values()) > 50
    assert stored_counts(url) == made
