"""Two sites forward into one central store through NATS JetStream: every row once, late
commits and late timestamps included, and the facts the central views need."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from ingest.sites.central import CentralIngest
from ingest.sites.queries import FACT_TABLES
from mes.cli import app
from mes.natsd import LocalNats
from mes.settings import get_settings
from tests.ingest.collecting import in_event_loop
from tests.sites.sites import (
    START,
    central_counts,
    forwarding,
    new_site,
    site_counts,
    until_central_has,
    write_seconds,
)
from tests.transactional.shop_floor import add_lot
from transactional.audit import acting


@in_event_loop
async def test_two_sites_arrive_whole_and_once_per_site_machine_and_minute(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site_a, site_b, central = databases(), databases(), databases()
    new_site(site_a)
    new_site(site_b)
    total = write_seconds(site_a, 0, 120) + write_seconds(site_b, 0, 90)

    async with forwarding({"A": site_a, "B": site_b}, central, nats_server.url,
                          message_rows=500):
        await until_central_has(central, total, 30)
        # Late data: rows stamped before everything already forwarded.
        total += await asyncio.to_thread(write_seconds, site_a, -60, 0)
        total += await asyncio.to_thread(write_seconds, site_b, 200, 230)
        await until_central_has(central, total, 30)

    a, b = site_counts(site_a), site_counts(site_b)
    assert central_counts(central, "A") == a
    assert central_counts(central, "B") == b
    assert min(minute for _, _, minute in a) < START


@in_event_loop
async def test_a_transaction_committing_after_newer_ones_is_still_forwarded(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    total = write_seconds(site, 0, 1)  # the chunk exists: the slow insert locks no other
    with psycopg.connect(site) as slow:
        # Begun first, so its transaction id is older than the ones that commit before it.
        slow.execute("INSERT INTO ts.production_count (ts, equipment_id, good, reject) "
                     "SELECT %s, id, 5, 0 FROM mes.equipment WHERE level = 'work_unit'",
                     (START - dt.timedelta(minutes=30),))
        async with forwarding({"S": site}, central, nats_server.url):
            total += await asyncio.to_thread(write_seconds, site, 1, 60)
            await until_central_has(central, total, 30)
            machines = slow.execute(
                "SELECT count(*) FROM mes.equipment WHERE level = 'work_unit'").fetchone()
            assert machines is not None
            slow.commit()
            await until_central_has(central, total + int(machines[0]), 30)

    assert central_counts(central, "S") == site_counts(site)


def _held_facts(url: str, schema: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            "equipment": conn.execute(
                f"SELECT id, code, name, level, parent_id FROM {schema}.equipment ORDER BY id"
            ).fetchall(),
            "signal": conn.execute(
                f"SELECT id, code, equipment_id FROM {schema}.signal ORDER BY id").fetchall(),
            "material": conn.execute(
                f"SELECT id, code, name FROM {schema}.material_definition ORDER BY id"
            ).fetchall()}


@in_event_loop
async def test_a_plant_that_does_not_forward_keeps_no_outbox_and_the_first_start_sends_all(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    with psycopg.connect(site) as conn:
        assert conn.execute("SELECT count(*) FROM site.outbox").fetchone() == (0,)
    async with forwarding({"S": site}, central, nats_server.url):
        for _ in range(300):
            if await asyncio.to_thread(_held_facts, central, "central") == _held_facts(
                    site, "mes"):
                break
            await asyncio.sleep(0.1)

    assert _held_facts(central, "central") == _held_facts(site, "mes")
    with psycopg.connect(central) as conn:
        assert conn.execute("SELECT DISTINCT site_id FROM central.equipment").fetchall() == [
            (1,)]


@in_event_loop
async def test_fact_changes_arrive_in_the_order_made(
        databases: Callable[[], str], nats_server: LocalNats) -> None:
    site, central = databases(), databases()
    new_site(site)
    async with forwarding({"S": site}, central, nats_server.url):
        with psycopg.connect(site, autocommit=True) as conn:
            conn.execute("UPDATE mes.equipment SET name = 'first' WHERE level = 'site'")
            conn.execute("UPDATE mes.equipment SET name = 'second' WHERE level = 'site'")
            conn.execute("UPDATE mes.material_definition SET name = name || ' (renamed)'")
            conn.execute("DELETE FROM mes.signal WHERE id = (SELECT max(id) FROM mes.signal)")
        expected = _held_facts(site, "mes")
        for _ in range(300):
            if await asyncio.to_thread(_held_facts, central, "central") == expected:
                break
            await asyncio.sleep(0.1)

    assert _held_facts(central, "central") == expected
    assert ("second",) in {(row[2],) for row in expected["equipment"]}


@in_event_loop
async def test_the_stream_delivered_again_stores_nothing_twice(
        databases: Callable[[], str], nats_server: LocalNats,
        monkeypatch: pytest.MonkeyPatch) -> None:
    site, central = databases(), databases()
    new_site(site)
    total = write_seconds(site, 0, 60)
    async with forwarding({"S": site}, central, nats_server.url, message_rows=300):
        await until_central_has(central, total, 30)
    position = _central_position(central)

    monkeypatch.setenv("MES_NATS_URL", nats_server.url)
    get_settings.cache_clear()
    # A CliRunner runs its command's asyncio.run: not from inside this event loop.
    replayed = await asyncio.to_thread(CliRunner().invoke, app,
                                       ["central", "replay", "--site", "S"])
    assert replayed.exit_code == 0, replayed.output
    assert "delivered again from its start" in replayed.output
    async with forwarding({"S": site}, central, nats_server.url, message_rows=300) as (_, ingest):
        await until_replayed(ingest, "S", position)

    assert central_counts(central, "S") == site_counts(site)
    assert _central_position(central) == position
    monkeypatch.setenv("MES_DATABASE_URL", site)
    get_settings.cache_clear()
    assert f"site S: {position} messages published, caught up" in CliRunner().invoke(
        app, ["site", "status"]).output
    monkeypatch.setenv("MES_DATABASE_URL", central)
    get_settings.cache_clear()
    assert f"site S: message {position} " in CliRunner().invoke(app, ["central", "status"]).output


def _central_position(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT message FROM central.site_position").fetchone()
    assert row is not None
    return int(row[0])


async def until_replayed(ingest: CentralIngest, code: str, messages: int) -> None:
    for _ in range(300):
        health = ingest.health.sites.get(code)
        if health is not None and health.replays >= messages:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the stream was not delivered again: {ingest.health}")


_SITE_FACTS = "SELECT to_jsonb(t) FROM {table} t ORDER BY to_jsonb(t)::text"
_CENTRAL_FACTS = ("SELECT to_jsonb(t) - 'site_id' FROM central.{name} t "
                  "WHERE site_id = 1 ORDER BY (to_jsonb(t) - 'site_id')::text")
_KPI = """
INSERT INTO derived.kpi (equipment_id, scope, period, period_start, period_end,
    planned_busy_seconds, actual_production_seconds, setup_seconds, unknown_seconds,
    produced_quantity, good_quantity, scrap_quantity, missing_ideal_cycle_time, failure_count,
    failure_seconds, oee)
SELECT id, 'machine', 'day', '2026-11-02', '2026-11-03', 86400, 60000, 0, 0, 100, 98, 2,
       false, 1, 600, %s
FROM mes.equipment WHERE level = 'work_unit'
"""


def _facts(url: str) -> dict[str, list[object]]:
    with psycopg.connect(url) as conn:
        return {table: [row[0] for row in conn.execute(_SITE_FACTS.format(table=table))]
                for table in FACT_TABLES}


def _central_facts(url: str) -> dict[str, list[object]]:
    with psycopg.connect(url) as conn:
        return {table: [row[0] for row in conn.execute(
                    _CENTRAL_FACTS.format(name=table.split(".")[1]))]
                for table in FACT_TABLES}


@in_event_loop
async def test_orders_runs_lots_genealogy_and_kpis_reach_the_central_store(
        db_url: str, session: Session, run_id: int, databases: Callable[[], str],
        nats_server: LocalNats) -> None:
    central = databases()
    parent = add_lot(session, "COIL-9", None, 40, material="STEEL-COIL")
    child = add_lot(session, "BRK-9", run_id, 25)
    with session.begin():
        acting(session, "mes-admin")
        session.execute(text("INSERT INTO mes.genealogy_link (parent_lot_id, child_lot_id, "
                             "kind, run_id, quantity) VALUES (:p, :c, 'consumed', :r, 10)"),
                        {"p": parent, "c": child, "r": run_id})
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(_KPI, (0.5,))
    async with forwarding({"S": db_url}, central, nats_server.url):
        with psycopg.connect(db_url) as conn:
            # A day derived again: its KPIs replaced whole, in one transaction.
            conn.execute("DELETE FROM derived.kpi")
            conn.execute(_KPI, (0.75,))
            conn.execute("INSERT INTO ts.collection_gap (equipment_id, source, gap_start, "
                         "cause) SELECT min(id), 'opc.tcp://press', now(), 'source_lost' "
                         "FROM mes.equipment WHERE level = 'work_unit'")
        expected = await asyncio.to_thread(_facts, db_url)
        for _ in range(300):
            if await asyncio.to_thread(_central_facts, central) == expected:
                break
            await asyncio.sleep(0.1)

    assert _central_facts(central) == expected
    assert all(expected.values())


def test_forward_names_the_site_or_says_which_to_choose(
        databases: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> None:
    site = databases()
    monkeypatch.setenv("MES_DATABASE_URL", site)
    get_settings.cache_clear()

    empty = CliRunner().invoke(app, ["site", "forward"])
    assert empty.exit_code == 1
    assert "the plant model has 0 sites (none): name this one with --site" in empty.output

    bad = CliRunner().invoke(app, ["site", "forward", "--site", "North plant"])
    assert bad.exit_code == 1
    assert "site code 'North plant': use 1-32 letters, digits" in bad.output
