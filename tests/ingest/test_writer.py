"""The writer and its store against the real database: batches land once, a replayed batch
that was already stored (its commit acknowledgement lost) is not stored twice, and a batch
the database refuses is set aside without blocking the ones behind it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import socket
import time
from pathlib import Path

import psycopg
import pytest

from ingest.conditioning import Quality, Reading, Rows
from ingest.spool import Spool
from ingest.store import write_rows, write_rows_once
from ingest.tagmap import Binding, PlantSignal
from ingest.writer import Writer
from tests.ingest.collecting import FLUSH_ROWS, eventually, in_event_loop, load_sample_plant

T0 = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)
TEMPERATURE = Binding(PlantSignal(7, "M.temperature", "process_value", 3, "M", 0.0, 100.0),
                      "plc", "holding:6")
GOOD = Binding(PlantSignal(8, "M.good", "good_count", 3, "M"), "plc", "holding:2")
STATE = Binding(PlantSignal(9, "M.state", "state", 3, "M"), "plc", "holding:0")


def _rows(count: int, start: int = 0) -> Rows:
    return Rows(process_value=[(T0 + dt.timedelta(seconds=i), 7, float(i), 0)
                               for i in range(start, start + count)],
                equipment_state=[(T0, 3, 1, None)],
                production_count=[(T0, 3, 5, 1)])


def _table_counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM ts.process_value), "
                           "(SELECT count(*) FROM ts.equipment_state), "
                           "(SELECT count(*) FROM ts.production_count)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_a_batch_stored_again_is_stored_once(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        write_rows(conn, _rows(100))
        # The same batch again, with 50 new rows: the copy fails on the first duplicate,
        # the fallback skips what is there and keeps the rest.
        write_rows(conn, _rows(150))
        write_rows_once(conn, _rows(150))
        total = conn.execute("SELECT count(*), sum(value) FROM ts.process_value").fetchone()
    assert total == (150, sum(float(i) for i in range(150)))
    assert _table_counts(db_url) == (150, 1, 1)


@in_event_loop
async def test_a_replayed_batch_already_in_the_database_is_not_stored_twice(
        db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        write_rows(conn, _rows(100))
    # The batch was committed, but the writer never heard so and spooled it.
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.append(_rows(100))
    spool.append(_rows(20, start=100))
    writer = Writer(db_url, spool, role="mes_ingest", flush_rows=FLUSH_ROWS)
    assert writer.recovered_at_start == (102 + 22, 2)
    running = asyncio.create_task(writer.run())
    writer.submit([Reading(TEMPERATURE, T0 + dt.timedelta(seconds=500), 42.0)])
    await writer.close()
    await running
    assert not spool
    assert _table_counts(db_url) == (121, 1, 1)
    assert writer.health.rows_recovered == 124


@in_event_loop
async def test_a_batch_the_database_refuses_is_set_aside_and_the_next_one_goes_in(
        db_url: str, db_admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    db_admin.execute("ALTER TABLE ts.process_value ADD CONSTRAINT no_999 CHECK (value <> 999)")
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(db_url, spool, flush_seconds=0.01, flush_rows=FLUSH_ROWS)
    running = asyncio.create_task(writer.run())
    writer.submit([Reading(TEMPERATURE, T0, 999.0), Reading(GOOD, T0, 5)])
    await eventually(lambda: writer.health.samples_dropped == 1, 15, "the batch refused")
    writer.submit([Reading(TEMPERATURE, T0, 20.5)])
    await writer.close()
    await running
    [rejected] = list(tmp_path.glob("spool/rejected-*.json"))
    assert json.loads(rejected.read_text())["process_value"][0][2] == 999.0
    assert writer.health.samples_dropped == 1
    assert _table_counts(db_url) == (1, 0, 0)
    assert not spool


@in_event_loop
async def test_values_an_integer_column_cannot_hold_are_refused_not_wrapped(
        db_url: str, tmp_path: Path) -> None:
    writer = Writer(db_url, Spool(tmp_path / "spool", 1 << 20), flush_rows=FLUSH_ROWS)
    running = asyncio.create_task(writer.run())
    writer.submit([Reading(STATE, T0, 2**40), Reading(GOOD, T0, 10),
                   Reading(GOOD, T0 + dt.timedelta(seconds=1), 2**31 + 20),
                   Reading(GOOD, T0 + dt.timedelta(seconds=2), 2**31 + 25),
                   Reading(STATE, T0 + dt.timedelta(seconds=3), 2)])
    await writer.close()
    await running
    assert writer.health.samples_refused == 2
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT state FROM ts.equipment_state").fetchall() == [(2,)]
        assert conn.execute("SELECT good FROM ts.production_count").fetchall() == [(5,)]


@in_event_loop
async def test_counts_continue_from_the_saved_baseline_after_a_restart(
        db_url: str, tmp_path: Path) -> None:
    carry = tmp_path / "carry_over.json"

    async def run_once(*readings: Reading) -> None:
        writer = Writer(db_url, Spool(tmp_path / "spool", 1 << 20), carry_over_path=carry,
                        flush_rows=FLUSH_ROWS)
        running = asyncio.create_task(writer.run())
        writer.submit(list(readings))
        await writer.close()
        await running

    await run_once(Reading(GOOD, T0, 1000), Reading(GOOD, T0 + dt.timedelta(seconds=1), 1004))
    # 26 parts made while the collector was stopped.
    await run_once(Reading(GOOD, T0 + dt.timedelta(seconds=60), 1030))
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT ts, good FROM ts.production_count ORDER BY ts").fetchall()
    assert rows == [(T0 + dt.timedelta(seconds=1), 4), (T0 + dt.timedelta(seconds=60), 26)]


@in_event_loop
async def test_a_full_queue_drops_and_counts_instead_of_growing(
        db_url: str, tmp_path: Path) -> None:
    writer = Writer(db_url, Spool(tmp_path / "spool", 1 << 20), max_queued=10,
                    flush_rows=FLUSH_ROWS)
    assert writer.submit([Reading(TEMPERATURE, T0, 1.0)] * 8)
    assert not writer.submit([Reading(TEMPERATURE, T0, 2.0)] * 3)
    assert writer.health.samples_dropped == 3
    assert writer.health.queue_depth == 8
    assert writer.health.samples_received == 11
    running = asyncio.create_task(writer.run())
    await writer.close()
    await running
    assert writer.health.queue_depth == 0
    # Eight identical readings at one instant: one row (same signal, same time).
    assert _table_counts(db_url) == (1, 0, 0)
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT quality FROM ts.process_value").fetchone() == (
            Quality.GOOD,)


@in_event_loop
async def test_the_writer_acts_as_the_ingest_role(db_url: str, tmp_path: Path) -> None:
    writer = Writer(db_url, Spool(tmp_path / "spool", 1 << 20), role="mes_ingest",
                    flush_rows=FLUSH_ROWS)
    running = asyncio.create_task(writer.run())
    writer.submit([Reading(TEMPERATURE, T0, 21.0)])
    await writer.close()
    await running
    assert _table_counts(db_url) == (1, 0, 0)
    conn = await asyncio.to_thread(writer._connection)
    try:
        assert conn.execute("SELECT current_user").fetchone() == ("mes_ingest",)
        # What the role may not do, the collector cannot do either.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM ts.process_value")
    finally:
        conn.close()


@in_event_loop
async def test_a_spooled_batch_the_database_refuses_does_not_block_the_others(
        db_url: str, db_admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    db_admin.execute("ALTER TABLE ts.process_value ADD CONSTRAINT no_999 CHECK (value <> 999)")
    spool = Spool(tmp_path / "spool", 1 << 20)
    spool.append(Rows(process_value=[(T0, 7, 999.0, 0)]))
    spool.append(_rows(10))
    writer = Writer(db_url, spool, role="mes_ingest", flush_rows=FLUSH_ROWS)
    running = asyncio.create_task(writer.run())
    writer.submit([Reading(TEMPERATURE, T0 + dt.timedelta(hours=1), 21.0)])
    await writer.close()
    await running
    assert not spool
    assert len(list(tmp_path.glob("spool/rejected-*.json"))) == 1
    assert _table_counts(db_url) == (11, 1, 1)
    assert writer.health.rows_recovered == 12
    assert writer.health.samples_dropped == 1


def _dead(url: str) -> str:
    """The same database on a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return re.sub(r":\d+/", f":{port}/", url, count=1)


@in_event_loop
async def test_the_status_says_connected_before_any_data(db_url: str, tmp_path: Path) -> None:
    writer = Writer(db_url, Spool(tmp_path / "spool", 1 << 20), flush_rows=FLUSH_ROWS)
    assert writer.health.database == "connecting"
    running = asyncio.create_task(writer.run())
    await eventually(lambda: writer.health.database == "connected", 5, "the database probed")
    await writer.close()
    await running


@in_event_loop
async def test_while_anything_is_spooled_the_database_is_retried_without_new_data(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Writer(_dead(db_url), spool, flush_rows=FLUSH_ROWS, flush_seconds=0.01)
    running = asyncio.create_task(writer.run())
    await eventually(lambda: writer.health.database == "unreachable", 5, "unreachable")
    writer.submit([Reading(TEMPERATURE, T0 + dt.timedelta(seconds=i), float(i))
                   for i in range(50)])
    await eventually(lambda: spool.rows == 50, 5, "spooled")
    writer.url = db_url  # the database is back; no new data arrives
    back = time.monotonic()
    await eventually(lambda: not spool and writer.health.database == "connected", 5,
                     "the spool replayed on the writer's own timer")
    replayed = time.monotonic() - back
    with capsys.disabled():
        print(f"\ndatabase back -> spool replayed (no new data): {replayed:.2f} s")
    assert replayed < 2.5  # the retry interval is capped at 2 s
    assert _table_counts(db_url) == (50, 0, 0)
    await writer.close()
    await running


@in_event_loop
async def test_rows_the_full_spool_cannot_take_leave_a_spool_overflow_gap(
        db_url: str, tmp_path: Path) -> None:
    _, signals = load_sample_plant(db_url)
    machine = signals["PRESS-1.temperature"].equipment_id
    spool = Spool(tmp_path / "spool", 2_000)
    writer = Writer(_dead(db_url), spool, flush_rows=FLUSH_ROWS, flush_seconds=0.01,
                    equipment_of={7: machine})
    running = asyncio.create_task(writer.run())
    await eventually(lambda: writer.health.database == "unreachable", 5, "unreachable")
    for batch in range(10):
        writer.submit([Reading(TEMPERATURE, T0 + dt.timedelta(seconds=batch * 10 + i),
                               float(i)) for i in range(10)])
        await asyncio.sleep(0.05)
    await eventually(lambda: writer.health.samples_dropped > 0, 5, "rows dropped")
    writer.url = db_url
    await eventually(lambda: not spool and writer.health.database == "connected", 5,
                     "back")
    await writer.close()
    await running
    with psycopg.connect(db_url) as conn:
        gaps = conn.execute("SELECT equipment_id, source, gap_start, gap_end, cause "
                            "FROM ts.collection_gap").fetchall()
        stored = conn.execute("SELECT min(ts), max(ts) FROM ts.process_value").fetchone()
    [(equipment_id, source, start, end, cause)] = gaps
    assert (equipment_id, source, cause) == (machine, "spool", "spool_overflow")
    assert stored is not None and stored[1] < start <= end <= T0 + dt.timedelta(seconds=99)
