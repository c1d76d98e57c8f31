"""`mes derive`, `mes kpi`, `mes downtime list` and `mes downtime classify`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mes.cli import app
from pipelines.cli_keys import KPI_JSON_KEYS
from tests.pipelines.scenario import DAY, Raw, load_test_plant, local

runner = CliRunner()


@pytest.fixture
def raw(use_database: str, tmp_path: Path) -> Raw:
    load_test_plant(use_database, tmp_path)
    raw = Raw(use_database)
    raw.states("M1", (local(DAY, "05:00"), 1, None), (local(DAY, "08:00"), 5, 7),
               (local(DAY, "09:00"), 1, None), (local(DAY, "22:00"), 0, None))
    raw.counts("M1", local(DAY, "06:00"), good=1_000, reject=10,
               every=dt.timedelta(seconds=10))
    return raw


def test_derive_then_kpi_json_has_exactly_the_documented_keys(raw: Raw) -> None:
    derived = runner.invoke(app, ["derive", "--from", DAY.isoformat()])
    assert derived.exit_code == 0, derived.output
    assert "all checks passed" in derived.output
    # one line a day; Dagster's own run log stays quiet unless something is wrong
    assert len(derived.output.strip().splitlines()) == 1, derived.output

    result = runner.invoke(app, ["kpi", "--machine", "M1", "--from", DAY.isoformat(),
                                 "--to", "2026-03-04", "--by", "shift", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [list(row) for row in rows] == [list(KPI_JSON_KEYS)] * 2
    day_shift = rows[0]
    assert day_shift["shift"] == "DAY"
    assert day_shift["period_start"] == "2026-03-03T06:00:00+01:00"
    assert day_shift["planned_busy_seconds"] == 7.5 * 3600
    assert abs(day_shift["availability"] - 6.5 / 7.5) < 1e-9
    assert abs(day_shift["performance"] - 2.0 * 1_010 / (6.5 * 3600)) < 1e-9
    assert abs(day_shift["quality"] - 1_000 / 1_010) < 1e-9
    assert day_shift["mttr_seconds"] == 3600.0


def test_kpi_by_day_lists_a_machine_without_planned_time(raw: Raw) -> None:
    runner.invoke(app, ["derive", "--from", DAY.isoformat()])

    result = runner.invoke(app, ["kpi", "--machine", "M2", "--from", DAY.isoformat(),
                                 "--to", "2026-03-04", "--by", "day", "--json"])

    [row] = json.loads(result.output)
    assert row["machine"] == "M2" and row["shift"] is None
    assert row["period_end"] == "2026-03-04T00:00:00+01:00"


def test_classify_a_stop_from_the_list_and_the_kpis_follow(
        raw: Raw, log_in: Callable[..., None]) -> None:
    runner.invoke(app, ["derive", "--from", DAY.isoformat()])
    listed = runner.invoke(app, ["downtime", "list", "--machine", "M1", "--from",
                                 DAY.isoformat(), "--to", "2026-03-04", "--json"])
    events = json.loads(listed.output)
    fault = next(e for e in events if e["category"] == "unplanned_stop")
    assert (fault["reason"], fault["reason_source"]) == ("BREAKDOWN", "fault_code")

    nobody = runner.invoke(app, ["downtime", "classify", str(fault["id"]), "--reason", "PM"])
    assert nobody.exit_code == 1 and "nobody is logged in" in nobody.output
    log_in("100")
    result = runner.invoke(app, ["downtime", "classify", str(fault["id"]), "--reason", "PM"])

    assert result.exit_code == 0, result.output
    shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    assert shift["planned_busy_seconds"] == 6.5 * 3600
    refused = runner.invoke(app, ["downtime", "classify", "999999", "--reason", "PM"])
    assert refused.exit_code == 1 and "no downtime event 999999" in refused.output
    unknown = runner.invoke(app, ["downtime", "classify", str(fault["id"]), "--reason",
                                  "NOPE"])
    assert unknown.exit_code == 1 and "'NOPE' does not exist" in unknown.output
