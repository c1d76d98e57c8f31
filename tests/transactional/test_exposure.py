"""Process values joined to runs and lots: envelopes stored with the run, and the lots
made while a signal was out of its limits with every lot made from them (hand-built
history); holding them; `mes lot exposed`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from tests.transactional.test_lots import Routing, person, setup_plant, setup_routing
from transactional.audit import acting
from transactional.errors import NotFound, RuleViolation
from transactional.exposure import exposed_lots, record_envelopes
from transactional.models import (
    Equipment,
    GenealogyLink,
    MaterialDefinition,
    MaterialLot,
    OperationRun,
    RunSignalEnvelope,
    Signal,
    StorageLocation,
)

DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
SIGNAL = "PRESS-1.temperature"  # limits 10..90 degC


def at(hour: int, minute: int = 0) -> dt.datetime:
    return DAY.replace(hour=hour, minute=minute)


def _id(session: Session, model: type[Equipment] | type[MaterialDefinition]
        | type[StorageLocation], code: str) -> int:
    return session.scalars(select(model.id).where(model.code == code)).one()


def _run(session: Session, routing: Routing, machine: str, start: dt.datetime,
         end: dt.datetime | None, operation: str = "stamp") -> int:
    run = OperationRun(work_order_id=routing.work_order_id,
                       operation_id=routing.stamp_id if operation == "stamp"
                       else routing.paint_id,
                       equipment_id=_id(session, Equipment, machine),
                       operator_id=person(session, "1001"), planned_quantity=100,
                       status="completed" if end else "running", started_at=start,
                       ended_at=end)
    session.add(run)
    session.flush()
    return run.id


def _lot(session: Session, code: str, material: str, run_id: int | None) -> int:
    lot = MaterialLot(code=code, material_id=_id(session, MaterialDefinition, material),
                      location_id=_id(session, StorageLocation, "LINE-2"),
                      produced_by_run_id=run_id)
    session.add(lot)
    session.flush()
    return lot.id


@pytest.fixture
def history(session: Session) -> dict[str, int]:
    """PRESS-1 runs A 06-07, B 07-08 (95 degC at 07:30), C 08-09 (120 degC of bad quality
    at 08:20), D from 09:00 still running (5 degC at 09:10). LOT-B (from B) went into
    PAINTED-1, split into BOX-1; LOT-A went into PAINTED-2."""
    setup_plant(session)
    routing = setup_routing(session)
    acting(session, "mes-admin")
    runs = {name: _run(session, routing, "PRESS-1", at(6 + i), at(7 + i) if name != "D"
                       else None) for i, name in enumerate("ABCD")}
    paint = _run(session, routing, "PAINT-1", at(10), at(11), operation="paint")
    lot_ids = {"LOT-A": _lot(session, "LOT-A", "BRACKET-RAW", runs["A"]),
               "LOT-B": _lot(session, "LOT-B", "BRACKET-RAW", runs["B"]),
               "PAINTED-1": _lot(session, "PAINTED-1", "BRACKET-A", paint),
               "PAINTED-2": _lot(session, "PAINTED-2", "BRACKET-A", paint),
               "BOX-1": _lot(session, "BOX-1", "BRACKET-A", None)}
    session.add_all([
        GenealogyLink(parent_lot_id=lot_ids["LOT-B"], child_lot_id=lot_ids["PAINTED-1"],
                      kind="consumed", run_id=paint),
        GenealogyLink(parent_lot_id=lot_ids["LOT-A"], child_lot_id=lot_ids["PAINTED-2"],
                      kind="consumed", run_id=paint),
        GenealogyLink(parent_lot_id=lot_ids["PAINTED-1"], child_lot_id=lot_ids["BOX-1"],
                      kind="split")])
    signal = session.scalars(select(Signal.id).where(Signal.code == SIGNAL)).one()
    samples = [(at(h, m), 50.0, 0) for h in (6, 7, 8) for m in range(0, 60, 10)]
    samples = [s for s in samples if s[0] not in (at(7, 30), at(8, 20))]
    samples += [(at(7, 30), 95.0, 0), (at(8, 20), 120.0, 2), (at(9, 0), 50.0, 0),
                (at(9, 10), 5.0, 0)]
    session.execute(text("INSERT INTO ts.process_value (ts, signal_id, value, quality) "
                         "VALUES (:ts, :s, :v, :q)"),
                    [{"ts": ts, "s": signal, "v": v, "q": q} for ts, v, q in samples])
    record_envelopes(session, [runs["A"], runs["B"], runs["C"]])
    session.commit()
    return {**runs, "signal": signal}


def test_the_envelope_of_each_run_is_stored_with_it(session: Session,
                                                    history: dict[str, int]) -> None:
    envelope = session.get(RunSignalEnvelope, (history["B"], history["signal"]))
    assert envelope is not None
    assert (envelope.samples, envelope.min_value, envelope.max_value) == (6, 50.0, 95.0)
    assert envelope.samples_out_of_limits == 1
    assert envelope.seconds_out_of_limits == 600  # 07:30 until the next sample at 07:40
    assert envelope.mean_value == pytest.approx((5 * 50 + 95) / 6)
    bad = session.get(RunSignalEnvelope, (history["C"], history["signal"]))
    assert bad is not None
    assert (bad.samples_out_of_limits, bad.bad_quality_seconds) == (0, 600)


def test_lots_made_while_out_of_limits_and_what_was_made_from_them(
        session: Session, history: dict[str, int]) -> None:
    with session.begin():
        found = exposed_lots(session, SIGNAL)
    assert {(r.run_id, r.judged_by) for r in found.runs} == {
        (history["B"], "envelope"), (history["D"], "samples")}
    assert [lot.code for lot in found.made] == ["LOT-B"]
    assert [(lot.code, lot.contains, lot.finished) for lot in found.downstream] == [
        ("BOX-1", ("LOT-B",), True), ("PAINTED-1", ("LOT-B",), True)]
    assert found.held == ()


def test_a_window_cuts_runs_and_judges_them_from_the_samples(
        session: Session, history: dict[str, int]) -> None:
    with session.begin():
        found = exposed_lots(session, SIGNAL, at(7, 35), at(10))
    assert [r.run_id for r in found.runs] == [history["D"]]
    with session.begin():
        found = exposed_lots(session, SIGNAL, at(7, 0), at(8, 0))
    assert [(r.run_id, r.judged_by) for r in found.runs] == [(history["B"], "envelope")]


def test_changed_limits_are_judged_from_the_samples(session: Session,
                                                    history: dict[str, int]) -> None:
    acting(session, "mes-admin")
    session.execute(text("UPDATE mes.signal SET high_limit = 100 WHERE code = :c"),
                    {"c": SIGNAL})
    session.commit()
    with session.begin():
        found = exposed_lots(session, SIGNAL)
    assert [r.run_id for r in found.runs] == [history["D"]]


def test_holding_the_exposed_lots(session: Session, history: dict[str, int]) -> None:
    with session.begin():
        acting(session, "2001")
        found = exposed_lots(session, SIGNAL, hold_by=person(session, "2001"))
    assert found.held == ("LOT-B", "BOX-1", "PAINTED-1")
    statuses: dict[str, str] = dict(session.execute(text(
        "SELECT code, status FROM mes.material_lot")).all())
    assert statuses["LOT-B"] == statuses["BOX-1"] == "on_hold"
    assert statuses["LOT-A"] == "available"


def test_a_signal_without_limits_or_unknown_is_refused(session: Session,
                                                       history: dict[str, int]) -> None:
    with pytest.raises(NotFound, match="no signal NOPE"):
        exposed_lots(session, "NOPE")
    session.rollback()
    with pytest.raises(RuleViolation, match="not a process value"):
        exposed_lots(session, "PRESS-1.state")


def test_mes_lot_exposed(history: dict[str, int], use_database: str,
                         log_in: Callable[..., None]) -> None:
    result = CliRunner().invoke(app, ["lot", "exposed", "--signal", SIGNAL, "--json"])
    assert result.exit_code == 0, result.output
    assert [lot["code"] for lot in json.loads(result.output)["made"]] == ["LOT-B"]
    text_ = CliRunner().invoke(app, ["lot", "exposed", "--signal", SIGNAL])
    assert "made LOT-B" in text_.output and "BOX-1" in text_.output
    refused = CliRunner().invoke(app, ["lot", "exposed", "--signal", SIGNAL, "--hold"])
    assert refused.exit_code == 1 and "nobody is logged in" in refused.output
    log_in("2001")  # quality
    held = CliRunner().invoke(app, ["lot", "exposed", "--signal", SIGNAL, "--hold", "--json"])
    assert held.exit_code == 0, held.output
    assert json.loads(held.output)["held"] == ["LOT-B", "BOX-1", "PAINTED-1"]
