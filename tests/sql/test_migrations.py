"""Migrations up and down on a real TimescaleDB, and the hypertables they create."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from ingest.schema import RAW_HYPERTABLES
from mes import migrate
from mes.db import engine
from mes.localdb import OWNER_ROLE, LocalCluster

HYPERTABLES = {"ts.process_value", "ts.equipment_state", "ts.production_count",
               "central.process_value", "central.equipment_state", "central.production_count"}


def _tables(url: str) -> set[str]:
    with engine(url).connect() as conn:
        return set(conn.execute(text(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables "
            "WHERE table_schema IN ('mes', 'ts', 'erp', 'ingest_api')")).scalars())


def _hypertables(url: str) -> set[str]:
    with engine(url).connect() as conn:
        return set(conn.execute(text(
            "SELECT hypertable_schema || '.' || hypertable_name "
            "FROM timescaledb_information.hypertables")).scalars())


def _revision(url: str) -> str | None:
    with engine(url).connect() as conn:
        return migrate.current_revision(conn)


def test_upgrade_downgrade_upgrade_on_empty_database(empty_db: str) -> None:
    assert _tables(empty_db) == set()

    info = migrate.upgrade(empty_db)

    assert info.edition in ("apache", "timescale")
    assert _revision(empty_db) == migrate.head_revision() == "0012_lot_shipping"
    tables = _tables(empty_db)
    assert {"mes.equipment", "mes.signal", "mes.shift", "mes.shift_break",
            "mes.downtime_reason", "mes.material_definition", "mes.person",
            "erp.work_center", "ingest_api.signal_map"} <= tables
    assert _hypertables(empty_db) == HYPERTABLES

    migrate.downgrade(empty_db, "base")

    assert _tables(empty_db) == set()
    assert _hypertables(empty_db) == set()
    assert _revision(empty_db) is None

    migrate.upgrade(empty_db)
    assert _hypertables(empty_db) == HYPERTABLES


def test_edition_is_reported_from_the_server(empty_db: str) -> None:
    with engine(empty_db).connect() as conn:
        license_ = conn.execute(text("SHOW timescaledb.license")).scalar_one()
        info = migrate.timescale_info(conn)
    assert info.edition == ("timescale" if license_ == "timescale" else "apache")


def test_compression_only_on_the_community_edition(db_url: str) -> None:
    with engine(db_url).connect() as conn:
        community = migrate.timescale_info(conn).community
        compressed = conn.execute(text(
            "SELECT count(*) FROM timescaledb_information.hypertables "
            "WHERE compression_enabled")).scalar_one()
    assert compressed == (6 if community else 0)


def test_migrate_refuses_a_database_without_timescaledb(
        cluster: LocalCluster, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    name = "mes_test_no_timescaledb"
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(OWNER_ROLE)))
    url = cluster.url(name)
    try:
        with pytest.raises(migrate.MigrationError, match="CREATE EXTENSION timescaledb"):
            migrate.upgrade(url)
        assert _tables(url) == set()
        with engine(url).connect() as conn:
            assert conn.execute(text(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'mes'")).scalar_one() == 0
    finally:
        engine(url).dispose()
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _chunks(conn: object, hypertable: str) -> int:
    schema, name = hypertable.split(".")
    return int(conn.execute(text(  # type: ignore[attr-defined]
        "SELECT count(*) FROM timescaledb_information.chunks "
        "WHERE hypertable_schema = :s AND hypertable_name = :n"), {"s": schema, "n": name}
    ).scalar_one())


def test_hypertables_create_chunks_as_rows_arrive(db_url: str) -> None:
    start = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    with engine(db_url).begin() as conn:
        assert _chunks(conn, "ts.process_value") == 0
        conn.execute(text("INSERT INTO ts.process_value (ts, signal_id, value) "
                          "VALUES (:ts, 1, 20.5)"),
                     [{"ts": start + dt.timedelta(days=d)} for d in range(3)])
        conn.execute(text("INSERT INTO ts.equipment_state (ts, equipment_id, state) "
                          "VALUES (:ts, 1, 1)"),
                     [{"ts": start + dt.timedelta(days=d)} for d in (0, 8, 16)])
        conn.execute(text("INSERT INTO ts.production_count (ts, equipment_id, good, reject) "
                          "VALUES (:ts, 1, 5, 1)"),
                     [{"ts": start + dt.timedelta(hours=h)} for h in (0, 1, 24)])
        # Three days of process values -> three daily chunks; states span three weeks;
        # counts of two days -> two daily chunks (a day partition sums one chunk).
        assert _chunks(conn, "ts.process_value") == 3
        assert _chunks(conn, "ts.equipment_state") == 3
        assert _chunks(conn, "ts.production_count") == 2


def test_time_series_keep_only_the_primary_key_and_forwarding_indexes(db_url: str) -> None:
    # Each extra index costs ingest speed; the primary key serves the queries we need, and
    # the transaction id index lets a site's forwarder find what is new.
    with engine(db_url).connect() as conn:
        indexes = conn.execute(text(
            "SELECT schemaname || '.' || tablename, indexname FROM pg_indexes "
            "WHERE schemaname = 'ts' AND tablename = ANY(:hypertables) ORDER BY 1, 2"),
            {"hypertables": [name.split(".")[1] for name in RAW_HYPERTABLES]}).all()
    assert [tuple(row) for row in indexes] == [
        ("ts.equipment_state", "ix_equipment_state_xid"),
        ("ts.equipment_state", "pk_equipment_state"),
        ("ts.process_value", "ix_process_value_xid"),
        ("ts.process_value", "pk_process_value"),
        ("ts.production_count", "ix_production_count_xid"),
        ("ts.production_count", "pk_production_count"),
    ]


def test_latest_value_per_signal_uses_the_index(db_url: str) -> None:
    with engine(db_url).begin() as conn:
        conn.execute(text(
            "INSERT INTO ts.process_value (ts, signal_id, value) "
            "SELECT t, s, random() FROM generate_series(now() - interval '2 days', now(), "
            "interval '1 minute') t, generate_series(1, 20) s"))
        conn.execute(text("ANALYZE ts.process_value"))
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT value FROM ts.process_value WHERE signal_id = 7 "
            "ORDER BY ts DESC LIMIT 1")).scalars())
    assert "Index Scan" in plan and "pk_process_value" in plan, plan
    assert "Seq Scan" not in plan, plan
