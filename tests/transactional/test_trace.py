"""Genealogy traces over a small plant history made through the lot services: backward to
the coil a box of painted brackets came from, forward from a coil to every box (a recall),
with the machines, operators, orders and inspections on the way; `mes trace`."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from tests.transactional.test_lots import (
    Routing,
    do,
    finish_run,
    inspect,
    receive,
    setup_plant,
    setup_routing,
    start_run,
)
from transactional import lots
from transactional.errors import NotFound
from transactional.genealogy import render, trace


def make_history(session: Session) -> Routing:
    """Two coils -> (split) -> stamped on two presses by two operators -> merged ->
    painted -> split into two boxes; a third press run still consuming coil 2.

    Levels backward from BOX-1: PAINTED-1, RAW-M, RAW-1 + RAW-2, COIL-1A + COIL-2, COIL-1.
    """
    routing = setup_routing(session)
    receive(session, "COIL-1", 500)
    receive(session, "COIL-2", 300)
    do(session, "1001", lambda who: lots.split(session, "COIL-1", [("COIL-1A", 250)], who))

    press_1 = start_run(session, routing, routing.stamp_id, "PRESS-1", "1001")
    do(session, "1001", lambda who: lots.consume(session, "COIL-1A", 100, press_1, who))
    do(session, "1001", lambda who: lots.consume(session, "COIL-2", 50, press_1, who))
    do(session, "1001", lambda who: lots.produce(session, "RAW-1", "BRACKET-RAW", 200,
                                                 "LINE-2", press_1, who))
    inspect(session, press_1, routing.hole_plan_id, 8.02, True, "2001")
    inspect(session, press_1, routing.hole_plan_id, 8.12, False, "2001", sample=2)
    finish_run(session, press_1, good=200)

    press_2 = start_run(session, routing, routing.stamp_id, "PRESS-2", "1002")
    do(session, "1002", lambda who: lots.consume(session, "COIL-1A", 100, press_2, who))
    do(session, "1002", lambda who: lots.produce(session, "RAW-2", "BRACKET-RAW", 200,
                                                 "LINE-2", press_2, who))
    finish_run(session, press_2, good=200)

    do(session, "1002", lambda who: lots.merge(session, ["RAW-1", "RAW-2"], "RAW-M", who))
    paint = start_run(session, routing, routing.paint_id, "PAINT-1", "3001")
    do(session, "3001", lambda who: lots.consume(session, "RAW-M", 400, paint, who))
    do(session, "3001", lambda who: lots.produce(session, "PAINTED-1", "BRACKET-A", 400,
                                                 "LINE-2", paint, who))
    inspect(session, paint, routing.coating_plan_id, 62, True, "2001")
    finish_run(session, paint, good=400)
    do(session, "1001", lambda who: lots.split(session, "PAINTED-1", [("BOX-1", 200),
                                                                       ("BOX-2", 200)], who))
    do(session, "1001", lambda who: lots.move(session, "BOX-1", "FG-STORE", who))

    # Still running: coil 2 went into it, nothing has come out yet.
    press_3 = start_run(session, routing, routing.stamp_id, "PRESS-1", "1002")
    do(session, "1002", lambda who: lots.consume(session, "COIL-2", 30, press_3, who))
    return routing


@pytest.fixture
def history(session: Session) -> Session:
    setup_plant(session)
    make_history(session)
    return session


def test_backward_trace_finds_every_ingredient_with_its_run(history: Session) -> None:
    found = trace(history, "BOX-1", ["backward"])

    assert found.levels("backward") == {
        "BOX-1": 0, "PAINTED-1": 1, "RAW-M": 2, "RAW-1": 3, "RAW-2": 3, "COIL-1A": 4,
        "COIL-2": 4, "COIL-1": 5}
    assert found.depth("backward") == 5
    assert "forward" not in found.links
    kinds = {(link.parent, link.child): (link.kind, link.quantity) for link in
             found.links["backward"]}
    assert kinds == {
        ("PAINTED-1", "BOX-1"): ("split", 200), ("RAW-M", "PAINTED-1"): ("consumed", 400),
        ("RAW-1", "RAW-M"): ("merge", 200), ("RAW-2", "RAW-M"): ("merge", 200),
        ("COIL-1A", "RAW-1"): ("consumed", 100), ("COIL-2", "RAW-1"): ("consumed", 50),
        ("COIL-1A", "RAW-2"): ("consumed", 100), ("COIL-1", "COIL-1A"): ("split", 250)}

    box, raw_1, coil_2 = found.lots["BOX-1"], found.lots["RAW-1"], found.lots["COIL-2"]
    assert (box.material, box.quantity, box.initial_quantity, box.status, box.location) == (
        "BRACKET-A", 200, 200, "available", "FG-STORE")
    assert (raw_1.quantity, raw_1.initial_quantity, raw_1.status) == (0, 200, "consumed")
    assert (coil_2.quantity, coil_2.initial_quantity, coil_2.unit) == (220, 300, "kg")

    stamped = found.runs[raw_1.made_by_run or 0]
    assert (stamped.machine, stamped.operator_badge, stamped.operator_name,
            stamped.work_order, stamped.operation) == (
        "PRESS-1", "1001", "Ana Lopez", "WO-4711", "STAMP")
    assert [(i.characteristic, i.measured, i.within_spec) for i in stamped.inspections] == [
        ("hole diameter", 8.02, True), ("hole diameter", 8.12, False)]
    painted = found.runs[found.lots["PAINTED-1"].made_by_run or 0]
    assert (painted.machine, painted.operator_badge) == ("PAINT-1", "3001")
    raw_2 = found.runs[found.lots["RAW-2"].made_by_run or 0]
    assert (raw_2.machine, raw_2.operator_name) == ("PRESS-2", "Ben Okafor")
    # Coil 2 went into the first press run and into the one still running.
    assert sorted(coil_2.consumed_by_runs.values()) == [30, 50]


def test_forward_trace_finds_everything_made_from_a_coil(history: Session) -> None:
    found = trace(history, "COIL-1", ["forward"])

    assert found.levels("forward") == {
        "COIL-1": 0, "COIL-1A": 1, "RAW-1": 2, "RAW-2": 2, "RAW-M": 3, "PAINTED-1": 4,
        "BOX-1": 5, "BOX-2": 5}
    finished = sorted(code for code, lot in found.lots.items()
                      if lot.material == "BRACKET-A" and lot.quantity > 0)
    assert finished == ["BOX-1", "BOX-2"]
    machines = {run.machine for run in found.runs.values()}
    assert machines == {"PRESS-1", "PRESS-2", "PAINT-1"}
    assert {run.work_order for run in found.runs.values()} == {"WO-4711"}

    coil_2 = trace(history, "COIL-2", ["forward"])
    assert set(coil_2.levels("forward")) == {"COIL-2", "RAW-1", "RAW-M", "PAINTED-1",
                                             "BOX-1", "BOX-2"}
    tree = render(coil_2)
    # The running press has taken coil 2 but made nothing yet: still where it went.
    assert "30 kg consumed by run" in tree and "no output lot yet" in tree
    assert "(running)" in tree
    # Backward only, the coil's consumers are no part of the answer.
    assert "consumed by" not in render(trace(history, "COIL-2", ["backward"]))


def test_both_directions_and_a_lot_without_genealogy(history: Session) -> None:
    found = trace(history, "RAW-M")
    assert found.depth("backward") == 3 and found.depth("forward") == 2
    assert set(found.levels("forward")) == {"RAW-M", "PAINTED-1", "BOX-1", "BOX-2"}

    do(history, "1001", lambda who: lots.receive(history, "COIL-9", "STEEL-COIL", 10,
                                                 "RM-STORE", who))
    alone = trace(history, "COIL-9")
    assert alone.depth("backward") == alone.depth("forward") == 0
    assert list(alone.lots) == ["COIL-9"]
    with pytest.raises(NotFound, match="no material lot NOPE"):
        trace(history, "NOPE")


def test_tree_shows_each_lot_once_with_machines_operators_orders(history: Session) -> None:
    tree = render(trace(history, "BOX-1", ["backward"]))
    lines = tree.splitlines()

    assert lines[0].startswith("BOX-1  BRACKET-A (Bracket type A, painted), 200 of 200 pcs "
                               "left, available, at FG-STORE")
    assert "backward: what went into it (5 levels, 7 lots)" in tree
    assert "split 200 pcs <- PAINTED-1" in tree
    assert "consumed 400 pcs in run" in tree
    assert "operation STAMP on PRESS-1, operator 1001 Ana Lopez" in tree
    assert "operation STAMP on PRESS-2, operator 1002 Ben Okafor" in tree
    assert "order WO-4711, operation PAINT on PAINT-1, operator 3001 Dana Novak" in tree
    assert "hole diameter #2 8.12 mm OUT OF SPEC [7.9, 8.1]" in tree
    assert "coating thickness #1 62 um ok" in tree
    # COIL-1A feeds both presses: expanded once, named the second time.
    assert sum("<- COIL-1A  STEEL-COIL" in line for line in lines) == 1
    assert sum("<- COIL-1A (shown above)" in line for line in lines) == 1
    assert sum("<- COIL-1  STEEL-COIL" in line for line in lines) == 1


def test_trace_command(use_database: str) -> None:
    with session_factory(use_database)() as session:
        setup_plant(session)
        make_history(session)
    runner = CliRunner()

    tree = runner.invoke(app, ["trace", "BOX-1", "--backward"])
    assert tree.exit_code == 0, tree.output
    assert "backward: what went into it (5 levels, 7 lots)" in tree.output
    assert "forward:" not in tree.output
    assert "PRESS-2, operator 1002 Ben Okafor" in tree.output

    both = runner.invoke(app, ["trace", "RAW-M"])
    assert "backward:" in both.output and "forward: where it went" in both.output

    recall = runner.invoke(app, ["trace", "COIL-1", "--forward", "--json"])
    assert recall.exit_code == 0, recall.output
    data = json.loads(recall.stdout)
    assert data["lot"] == "COIL-1" and "backward" not in data
    assert data["forward"]["levels"] == 5
    assert {link["child"] for link in data["forward"]["links"]} == {
        "COIL-1A", "RAW-1", "RAW-2", "RAW-M", "PAINTED-1", "BOX-1", "BOX-2"}
    box = data["lots"]["BOX-1"]
    assert (box["quantity"], box["status"], box["location"]) == (200, "available", "FG-STORE")
    made = data["runs"][str(data["lots"]["RAW-1"]["made_by_run"])]
    assert made["machine"] == "PRESS-1"
    assert made["operator"] == {"badge": "1001", "name": "Ana Lopez"}
    assert made["work_order"] == "WO-4711"
    assert [i["within_spec"] for i in made["inspections"]] == [True, False]

    missing = runner.invoke(app, ["trace", "NOPE"])
    assert missing.exit_code == 1 and "no material lot NOPE" in missing.output
