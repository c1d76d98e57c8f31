"""`mes bench oee`: a small run reports every figure, both computations agree, and the
scratch database is gone afterwards."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from bench.oee import OeeBenchError, _compare
from mes.cli import app
from mes.localdb import LocalCluster
from tests.conftest import AdminConnection


@pytest.mark.slow
def test_oee_bench_reports_agreeing_figures_and_drops_its_database(
        cluster: LocalCluster, admin: AdminConnection) -> None:
    result = CliRunner().invoke(app, ["bench", "oee", "--machines", "3", "--days", "2",
                                      "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["state_rows"] == 3 * 2 * 1440
    assert figures["count_rows"] == 3 * 2 * 86400
    assert figures["compared_hours"] == 3 * 24
    assert figures["max_difference"] <= 1e-9
    assert figures["backfill_seconds_per_day"] > 0
    left = admin.execute("SELECT count(*) FROM pg_database WHERE datname LIKE "
                         "'mes_bench_oee_%'").fetchone()
    assert left == (0,)


def test_a_disagreement_with_the_sql_is_an_error() -> None:
    ours = pl.DataFrame({"scope": ["machine"], "period": ["hour"], "equipment_id": [1],
                         "period_start": [1], "availability": [0.5], "performance": [0.9],
                         "quality": [1.0], "oee": [0.45]},
                        schema_overrides={"equipment_id": pl.Int32})
    sql = pl.DataFrame({"equipment_id": [1], "hour_start": [1], "availability": [0.5],
                        "performance": [0.8], "quality": [1.0]})

    with pytest.raises(OeeBenchError, match="disagree"):
        _compare(ours, sql)
