"""`mes db retention` drops exactly the raw chunks entirely past the horizon."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from ingest.retention import drop_old_chunks, parse_age
from mes.cli import app
from mes.db import engine

CHUNKS = text(
    "SELECT format('%I.%I', chunk_schema, chunk_name), range_end "
    "FROM timescaledb_information.chunks WHERE hypertable_schema = 'ts' "
    "AND hypertable_name = :name ORDER BY range_start")


def _fill(conn: Connection, days: int) -> None:
    """One process value an hour and one state change a day, for `days` days up to now."""
    conn.execute(text(
        "INSERT INTO ts.process_value (ts, signal_id, value) "
        "SELECT t, 1, 1.0 FROM generate_series(now() - make_interval(days => :days), now(), "
        "interval '1 hour') t"), {"days": days})
    conn.execute(text(
        "INSERT INTO ts.equipment_state (ts, equipment_id, state) "
        "SELECT t, 1, 1 FROM generate_series(now() - make_interval(days => :days), now(), "
        "interval '1 day') t"), {"days": days})


def test_drops_exactly_the_chunks_past_the_horizon(db_url: str) -> None:
    with engine(db_url).begin() as conn:
        _fill(conn, 120)
    with engine(db_url).connect() as conn:
        cutoff = conn.execute(text("SELECT now() - interval '90 days'")).scalar_one()
        before = {name: conn.execute(CHUNKS, {"name": name}).all()
                  for name in ("process_value", "equipment_state")}
        rows_after_cutoff = conn.execute(text(
            "SELECT count(*) FROM ts.process_value WHERE ts >= :c"), {"c": cutoff}).scalar_one()

    with engine(db_url).begin() as conn:
        results = {r.hypertable: set(r.chunks) for r in drop_old_chunks(
            conn, dt.timedelta(days=90))}

    for name, chunks in before.items():
        expected = {chunk for chunk, range_end in chunks if range_end <= cutoff}
        assert len(expected) >= 4  # daily and weekly chunks: a real set, not an empty one
        assert results[f"ts.{name}"] == expected
    assert results["ts.production_count"] == set()
    with engine(db_url).connect() as conn:
        for name, chunks in before.items():
            remaining = {chunk for chunk, _ in conn.execute(CHUNKS, {"name": name})}
            assert remaining == {chunk for chunk, end in chunks if end > cutoff}
        # Nothing newer than the horizon was lost.
        assert conn.execute(text(
            "SELECT count(*) FROM ts.process_value WHERE ts >= :c"), {"c": cutoff}
        ).scalar_one() == rows_after_cutoff
        oldest = conn.execute(text("SELECT min(ts) FROM ts.process_value")).scalar_one()
        assert cutoff - dt.timedelta(days=1) < oldest <= cutoff


def test_dry_run_lists_and_keeps(db_url: str) -> None:
    with engine(db_url).begin() as conn:
        _fill(conn, 30)
    runner = CliRunner()
    with engine(db_url).connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM ts.process_value")).scalar_one()
    result = runner.invoke(app, ["db", "retention", "--older-than", "10d", "--dry-run"],
                           env={"MES_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "ts.process_value: would drop" in result.output
    with engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ts.process_value")).scalar_one() == rows

    dropped = runner.invoke(app, ["db", "retention", "--older-than", "10d"],
                            env={"MES_DATABASE_URL": db_url})
    assert dropped.exit_code == 0, dropped.output
    with engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ts.process_value")).scalar_one() < rows


@pytest.mark.parametrize(("text_", "expected"), [
    ("90d", dt.timedelta(days=90)), ("36h", dt.timedelta(hours=36)),
    ("2w", dt.timedelta(weeks=2)), ("7 days", dt.timedelta(days=7))])
def test_parse_age(text_: str, expected: dt.timedelta) -> None:
    assert parse_age(text_) == expected


@pytest.mark.parametrize("bad", ["90", "0d", "-5d", "ninety days", "3 months"])
def test_parse_age_refuses_unclear_ages(bad: str) -> None:
    with pytest.raises(ValueError, match="is not an age like 90d"):
        parse_age(bad)


def test_cli_rejects_a_bad_age(db_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "retention", "--older-than", "soon"],
                                env={"MES_DATABASE_URL": db_url})
    assert result.exit_code == 1
    assert "--older-than: 'soon' is not an age like 90d" in result.output


def test_policy_is_scheduled_only_where_the_edition_has_policies(db_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "retention", "--older-than", "90d", "--policy"],
                                env={"MES_DATABASE_URL": db_url})
    with engine(db_url).connect() as conn:
        community = conn.execute(text("SHOW timescaledb.license")).scalar_one() == "timescale"
        jobs = conn.execute(text(
            "SELECT count(*) FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention'")).scalar_one()
    if community:
        assert result.exit_code == 0, result.output
        assert jobs == 3
    else:
        assert result.exit_code == 1
        assert "apache edition, which has no retention policies" in result.output
        assert jobs == 0
