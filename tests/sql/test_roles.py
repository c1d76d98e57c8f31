"""Least privilege, checked by acting as each role in a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import errors

Conn = psycopg.Connection[tuple[object, ...]]
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
# Password hashes and session tokens: read by the login service only, never by analysts.
SECRETS = ("mes.credential", "mes.login_session")


@contextmanager
def acting_as(conn: Conn, role: str) -> Iterator[Conn]:
    conn.execute(f"SET ROLE {role}")
    try:
        yield conn
    finally:
        conn.execute("RESET ROLE")


def _relations(conn: Conn) -> list[str]:
    """Every table and view outside the system's and TimescaleDB's own schemas, including
    ones later migrations add and Alembic's version table in `public`."""
    return [str(row[0]) for row in conn.execute(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND table_schema NOT LIKE '\\_timescaledb%' "
        "AND table_schema NOT LIKE 'timescaledb\\_%' ORDER BY 1")]


def _can(conn: Conn, role: str, relation: str, privilege: str) -> bool:
    row = conn.execute("SELECT has_table_privilege(%s, %s, %s)",
                       (role, relation, privilege)).fetchone()
    assert row is not None
    return bool(row[0])


def test_ingest_inserts_time_series_and_nothing_else(db_admin: Conn) -> None:
    with acting_as(db_admin, "mes_ingest") as conn:
        # A new chunk is created on the way: inserting must not need more than INSERT.
        conn.execute("INSERT INTO ts.process_value (ts, signal_id, value) "
                     "VALUES ('2026-05-01T10:00Z', 1, 1.5)")
        conn.execute("INSERT INTO ts.equipment_state (ts, equipment_id, state) "
                     "VALUES ('2026-05-01T10:00Z', 1, 1)")
        conn.execute("INSERT INTO ts.production_count (ts, equipment_id, good, reject) "
                     "VALUES ('2026-05-01T10:00Z', 1, 3, 0)")
        conn.execute("SELECT * FROM ingest_api.signal_map")
        for statement in (
            "SELECT * FROM mes.equipment",
            "SELECT * FROM mes.signal",
            "INSERT INTO mes.material_definition (code, name, kind, unit) "
            "VALUES ('X', 'X', 'raw', 'kg')",
            "UPDATE mes.signal SET name = 'x'",
            "DELETE FROM mes.person",
            "SELECT * FROM ts.process_value",
            "UPDATE ts.process_value SET value = 0",
            "DELETE FROM ts.production_count",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    relations = _relations(db_admin)
    assert "public.alembic_version" in relations and "mes.equipment" in relations
    for relation in relations:
        if not relation.startswith(("ts.", "ingest_api.")):
            for privilege in ("SELECT", *WRITES):
                assert not _can(db_admin, "mes_ingest", relation, privilege), (relation, privilege)
    row = db_admin.execute("SELECT count(*) FROM ts.process_value").fetchone()
    assert row == (1,)


def test_erp_reader_sees_only_its_view_schema(db_admin: Conn) -> None:
    with acting_as(db_admin, "mes_erp_reader") as conn:
        conn.execute("SELECT * FROM erp.work_center")
        conn.execute("SELECT * FROM erp.material")
        for statement in ("SELECT * FROM mes.equipment", "SELECT * FROM ts.process_value",
                          "SELECT * FROM ingest_api.signal_map"):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    for relation in _relations(db_admin):
        readable = _can(db_admin, "mes_erp_reader", relation, "SELECT")
        assert readable == relation.startswith("erp."), relation
        assert not any(_can(db_admin, "mes_erp_reader", relation, p) for p in WRITES), relation


def test_analyst_reads_everything_and_writes_nothing(db_admin: Conn) -> None:
    with acting_as(db_admin, "mes_analyst") as conn:
        conn.execute("SELECT * FROM mes.equipment")
        conn.execute("SELECT * FROM ts.process_value")
        conn.execute("SELECT * FROM erp.work_center")
        for statement in (
            "INSERT INTO ts.process_value (ts, signal_id, value) VALUES (now(), 1, 1)",
            "INSERT INTO mes.material_definition (code, name, kind, unit) "
            "VALUES ('X', 'X', 'raw', 'kg')",
            "UPDATE mes.equipment SET name = 'x'",
            "DELETE FROM mes.sample_quality",
            "TRUNCATE mes.person",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    for relation in _relations(db_admin):
        if relation in SECRETS:
            assert not _can(db_admin, "mes_analyst", relation, "SELECT"), relation
        elif relation.startswith(("mes.", "ts.", "erp.")):
            assert _can(db_admin, "mes_analyst", relation, "SELECT"), relation
        assert not any(_can(db_admin, "mes_analyst", relation, p) for p in WRITES), relation


def test_app_changes_transactional_tables_but_not_time_series(db_admin: Conn) -> None:
    with acting_as(db_admin, "mes_app") as conn:
        conn.execute("INSERT INTO mes.material_definition (code, name, kind, unit) "
                     "VALUES ('STEEL', 'Steel', 'raw', 'kg')")
        conn.execute("UPDATE mes.material_definition SET name = 'Steel sheet'")
        conn.execute("SELECT * FROM ts.process_value")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO ts.process_value (ts, signal_id, value) "
                         "VALUES (now(), 1, 1)")
    row = db_admin.execute("SELECT name FROM mes.material_definition").fetchone()
    assert row == ("Steel sheet",)


def test_app_cannot_change_people_roles_credentials_or_lot_quantities(db_admin: Conn) -> None:
    """The application role acts; who people are, their classes and their passwords are
    administration, and a lot's quantity is only the sum of its movements."""
    db_admin.execute("SELECT set_config('mes.actor', 'mes-admin', false)")
    db_admin.execute("INSERT INTO mes.person (badge, name) VALUES ('7', 'Seven')")
    with acting_as(db_admin, "mes_app") as conn:
        for statement in (
            "INSERT INTO mes.person (badge, name) VALUES ('8', 'Eight')",
            "UPDATE mes.person SET name = 'x'",
            "INSERT INTO mes.personnel_class (code, name, role) VALUES ('A', 'A', 'administrator')",
            "DELETE FROM mes.person_class_membership",
            "UPDATE mes.credential SET password_hash = 'x'",
            "INSERT INTO mes.credential (person_id, password_hash) VALUES (1, 'x')",
            "UPDATE mes.material_lot SET quantity = 999",
            "UPDATE mes.login_session SET person_id = 1",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
    assert db_admin.execute("SELECT name FROM mes.person WHERE badge = '7'").fetchone() == (
        "Seven",)
