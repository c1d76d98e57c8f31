"""`mes bench ingest`: a quick run yields every figure, consistent with itself, as one JSON
object, and leaves no scratch database behind; an external server is refused."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from bench.ingest import render
from mes.cli import app
from mes.localdb import LocalCluster
from mes.settings import get_settings

AdminConnection = psycopg.Connection[tuple[object, ...]]


def _positive(section: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert section[key] > 0, key


@pytest.mark.slow
def test_quick_bench_reports_every_figure_and_drops_its_database(
        cluster: LocalCluster, admin: AdminConnection) -> None:
    result = CliRunner().invoke(app, ["bench", "ingest", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    sizes = figures["sizes"]

    throughput = figures["throughput"]
    assert throughput["rows"] == sizes["rows"]
    _positive(throughput, "writer_rows_per_second", "ceiling_rows_per_second",
              "raw_copy_rows_per_second", "executemany_rows_per_second", "executemany_rows")
    assert len(throughput["writer_rounds_rows_per_second"]) == sizes["rounds"]
    assert len(throughput["ceiling_rounds_rows_per_second"]) == sizes["rounds"]
    assert throughput["writer_to_ceiling"] == pytest.approx(
        throughput["writer_rows_per_second"] / throughput["ceiling_rows_per_second"],
        abs=0.001)

    storage = figures["storage"]
    assert storage["rows"] == throughput["rows"]
    assert storage["total_bytes"] == (storage["table_bytes"] + storage["index_bytes"]
                                      + storage["toast_bytes"])
    assert storage["bytes_per_row"] == pytest.approx(storage["total_bytes"] / storage["rows"],
                                                     abs=0.1)
    assert storage["reference_bytes_per_row"] == 106

    runs = figures["latency"]["runs"]
    assert [run["rate_per_second"] for run in runs] == list(sizes["latency_rates"])
    for run in runs:
        assert run["written"] > 0
        assert run["seen"] == run["written"], "a change written at the simulator was lost"
        assert run["lost"] == 0
        assert 0 < run["measured"] < run["seen"]  # the first second is discarded
        assert 0 < run["p50_ms"] <= run["p90_ms"] <= run["p99_ms"] <= run["max_ms"]

    capacity = figures["capacity"]
    opcua = capacity["opcua"]
    assert opcua["nodes"] == sizes["wide_machines"] * sizes["wide_values_per_machine"]
    assert opcua["steps"]
    for step in opcua["steps"]:
        _positive(step, "written", "written_per_second", "received_per_second")
        assert step["lost"] >= 0
        assert step["received_per_second"] <= step["written_per_second"]
    assert opcua["sustained_per_second"] >= 0
    assert opcua["target_per_second"] == 10_000

    modbus = capacity["modbus"]
    _positive(modbus, "requests_per_second", "polls_per_second", "rows_written_per_second")
    assert modbus["registers_per_second"] > modbus["requests_per_second"]
    assert modbus["devices"] == 8

    speed = capacity["speed"]
    assert speed["steps"]
    for step in speed["steps"]:
        _positive(step, "speed", "ticks", "served_process_values", "served_per_second")
        assert step["stored_process_values"] <= step["served_process_values"]
    assert speed["max_speed_kept_up"] is None or speed["max_speed_kept_up"] in sizes["speeds"]

    mqtt = capacity["mqtt"]
    assert mqtt["devices"] == sizes["wide_machines"]
    # The births, then the backlog: every metric of it stored once, nothing dropped.
    assert mqtt["messages"] == sizes["mqtt_messages"] + 1 + mqtt["devices"]
    assert mqtt["rows_written"] == mqtt["metrics"] > sizes["mqtt_messages"]
    assert (mqtt["dropped"], mqtt["rejected"]) == (0, 0)
    _positive(mqtt, "raw_messages_per_second", "collector_messages_per_second",
              "collector_metrics_per_second", "publish_messages_per_second")

    deadband = figures["deadband"]
    assert deadband["rows_without_deadband"] == deadband["changes"] > 0
    kept = [variant["rows"] for variant in deadband["deadbands"]]
    assert deadband["changes"] > kept[0] > kept[1] > 0  # wider deadbands keep fewer rows
    for variant in deadband["deadbands"]:
        assert variant["saved_percent"] == pytest.approx(
            100 * (1 - variant["rows"] / deadband["changes"]), abs=0.1)

    assert figures["database"].startswith("mes_bench_")
    assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                         (figures["database"],)).fetchone() is None
    table = render(figures)
    assert "target >= 0.90" in table and "target < 250 ms" in table
    assert "MQTT collector, Sparkplug B" in table


def test_bench_refuses_an_external_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_DATABASE_URL", "postgresql://mes@db.example.com/mes")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["bench", "ingest", "--quick"])
    assert result.exit_code == 1
    assert "local database cluster" in result.output
    assert "mes db up" in result.output
    assert result.stdout == ""
