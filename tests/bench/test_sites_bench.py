"""`mes bench sites`: a small run reports every figure, the central store agrees with both
sites, and nothing it started is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.sites import MARKER_SIGNAL, second_of_values
from mes.cli import app
from mes.settings import get_settings


@pytest.mark.slow
def test_sites_bench_reports_its_figures_and_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_HOME", str(tmp_path))
    get_settings.cache_clear()

    result = CliRunner().invoke(app, ["bench", "sites", "--quick", "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["rows_lost"] == figures["rows_duplicated"] == 0
    assert figures["backlog_rows"] == 2 * 30 * (200 + 1)
    assert figures["catch_up_rows_per_second"] > 0
    assert 0 < figures["latency_p99_seconds"] < 30
    assert figures["site_capacity_signals_1hz"] == 2_000
    assert figures["central_bytes_per_row"] > 0
    assert list(tmp_path.glob("bench-sites-*")) == []


def test_a_second_of_values_is_one_row_per_signal_and_the_marker_last() -> None:
    payload = second_of_values(3, 0)

    rows = payload[19:-2]
    assert len(rows) == 4 * 40
    signal_ids = [int.from_bytes(rows[i * 40 + 18:i * 40 + 22], "big", signed=True)
                  for i in range(4)]
    assert signal_ids == [1, 2, 3, MARKER_SIGNAL]
