"""`mes bench trace`: the synthetic history has the promised shape and adds up; a small run
reports every figure as one JSON object and leaves no scratch database behind."""

from __future__ import annotations

import json
from collections import Counter

import psycopg
import pytest
from typer.testing import CliRunner

from bench.trace import render_trace_bench
from bench.trace.history import STAGES, History, Reference, make_shape, stage_counts
from mes.cli import app
from mes.localdb import LocalCluster
from mes.settings import get_settings

AdminConnection = psycopg.Connection[tuple[object, ...]]


def test_the_history_has_six_levels_fan_in_and_fan_out() -> None:
    shape = make_shape(5000, seed=1)
    assert shape.lots == 5000 == sum(stage_counts(5000).values())
    stage_of = {lot: stage.prefix for stage in STAGES for lot in shape.ids(stage.prefix)}
    inputs = Counter(shape.children)
    outputs = Counter(shape.parents)

    # Every lot but a pallet went somewhere, so a coil's trace reaches the pallets.
    unused = [lot for lot, prefix in stage_of.items() if prefix != "PALLET" and not outputs[lot]]
    assert unused == []
    assert {stage_of[lot] for lot in inputs} == {"STRIP", "STAMPED", "DEBURRED", "PAINTED",
                                                 "CURED", "PALLET"}
    assert {inputs[lot] for lot in shape.ids("STRIP")} == {1}
    assert {inputs[lot] for lot in shape.ids("PALLET")} == {2, 3}
    assert max(inputs[lot] for lot in shape.ids("PAINTED")) >= 3  # deburred lots + powder
    assert max(outputs[lot] for lot in shape.ids("COIL")) >= 2      # slit into strips
    assert max(outputs[lot] for lot in shape.ids("POWDER")) >= 5    # one lot, many runs
    # Whole lots are merged: a cured lot goes onto one pallet only.
    cured_onto_pallets = [parent for parent, child in zip(shape.parents, shape.children,
                                                          strict=True)
                          if stage_of[child] == "PALLET"]
    assert len(cured_onto_pallets) == len(set(cured_onto_pallets)) == shape.count["CURED"]

    # Walking up from a pallet passes through every stage: six levels.
    level, frontier = 0, set(shape.ids("PALLET")[:1])
    parents_of: dict[int, list[int]] = {}
    for parent, child in zip(shape.parents, shape.children, strict=True):
        parents_of.setdefault(child, []).append(parent)
    while frontier:
        frontier = {p for lot in frontier for p in parents_of.get(lot, [])}
        level += bool(frontier)
    assert level == 6


def test_the_generated_rows_add_up_lot_by_lot() -> None:
    shape = make_shape(3000, seed=2)
    reference = Reference(
        material={stage.material: n for n, stage in enumerate(STAGES, start=1)},
        location={stage.location: n for n, stage in enumerate(STAGES, start=1)},
        operation={"STAMP": 1, "DEBURR": 2, "PAINT": 3, "CURE": 4},
        plan={"STAMP": 1, "DEBURR": 2, "PAINT": 3, "CURE": 4},
        machine={code: n for n, code in enumerate(
            ("PRESS-1", "PRESS-2", "DEBURR-1", "PAINT-1", "OVEN-1"), start=1)},
        operators=[1, 2, 3], product_id=1)
    history = History(shape, reference, seed=2)

    moved: Counter[int] = Counter()
    for line in history.lot_movements():
        _, lot_id, _, quantity, *_ = line.split("\t")
        moved[int(lot_id)] += int(quantity)
    held = {int(line.split("\t")[0]): int(line.split("\t")[4])
            for line in history.material_lots()}
    assert len(held) == 3000
    assert all(quantity >= 0 for quantity in held.values())
    assert {lot: moved[lot] for lot in held} == held
    statuses = Counter(line.split("\t")[3] for line in history.material_lots())
    assert statuses["available"] == shape.count["PALLET"]
    links = list(history.genealogy_links())
    assert len(links) == len(shape.parents)
    assert {line.split("\t")[3] for line in links} == {"split", "consumed", "merge"}


@pytest.mark.slow
def test_trace_bench_reports_every_figure_and_drops_its_database(
        cluster: LocalCluster, admin: AdminConnection) -> None:
    result = CliRunner().invoke(app, ["bench", "trace", "--lots", "20000", "--traces", "60",
                                      "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)  # one JSON object, nothing else on stdout

    history = figures["history"]
    rows = history["rows"]
    assert history["lots"] == rows["material_lot"] == 20000
    assert sum(history["stages"].values()) == 20000
    assert rows["lot_movement"] == rows["material_lot"] + rows["genealogy_link"]
    assert rows["genealogy_link"] > rows["material_lot"]  # fan-in
    assert rows["inspection_result"] == 2 * rows["operation_run"] > 0
    assert history["lots_out_of_balance"] == 0
    assert "session_replication_role = replica" in history["bulk_load"]

    for direction in ("backward", "forward"):
        traced = figures[direction]
        assert traced["traces"] == 60
        assert 0 < traced["p50_ms"] <= traced["p95_ms"] <= traced["p99_ms"] <= traced["max_ms"]
        assert traced["levels_min"] == traced["levels_max"] == 6
        assert traced["six_level_share"] == 1.0
        assert 7 <= traced["lots_median"] <= traced["lots_max"]
    assert figures["target_p95_ms"] == 50
    assert figures["meets_target"] == (figures["backward"]["p95_ms"] < 50
                                       and figures["forward"]["p95_ms"] < 50)

    assert figures["database"].startswith("mes_bench_trace_")
    assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                         (figures["database"],)).fetchone() is None
    table = render_trace_bench(figures)
    assert "target < 50 ms" in table and "backward from a pallet: p95" in table
    assert "triggers off for the load only" in table


def test_trace_bench_refuses_an_external_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_DATABASE_URL", "postgresql://mes@db.example.com/mes")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["bench", "trace", "--lots", "20000"])
    assert result.exit_code == 1
    assert "local database cluster" in result.output and "mes db up" in result.output
    assert result.stdout == ""
