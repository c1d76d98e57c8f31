"""The operator station end to end through the UI, and each refusal as a message."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from tests.conftest import PASSWORD, give_password
from tests.transactional.shop_floor import (
    CERTIFIED,
    EXPIRED,
    FLATNESS,
    HOLE,
    ORDER,
    STAMPING,
    ShopFloor,
    add_lot,
    set_order_status,
)
from transactional.audit import acting
from transactional.permissions import ADMINISTRATION


def _errors(app: AppTest) -> list[str]:
    return [error.value for error in app.error]


def _log_in(app: AppTest, badge: str, secret: str) -> None:
    app.text_input(key="badge").input(badge)
    app.text_input(key="secret").input(secret)
    app.button(key="log_in").click().run()


def _start(app: AppTest) -> None:
    app.text_input(key="order").input(ORDER)
    app.text_input(key="operation").input(STAMPING)
    app.text_input(key="machine").input("PRESS-1")
    app.button(key="start").click().run()


def _inspect(app: AppTest, characteristic: str, sample: int, value: float) -> None:
    app.text_input(key="characteristic").input(characteristic)
    app.number_input(key="sample").set_value(sample)
    app.number_input(key="measured").set_value(value)
    app.button(key="record").click().run()


def test_an_operator_runs_an_operation_from_the_station_and_every_refusal_is_a_message(
        app: AppTest, floor: ShopFloor, session: Session, use_database: str) -> None:
    set_order_status(session, "released")
    for badge in (CERTIFIED, EXPIRED):
        give_password(use_database, badge)
    add_lot(session, "COIL-1", None, 300, material="STEEL-COIL")
    add_lot(session, "COIL-H", None, 300, material="STEEL-COIL")
    with session.begin():
        acting(session, ADMINISTRATION)
        session.execute(text("UPDATE mes.material_lot SET status = 'on_hold' "
                             "WHERE code = 'COIL-H'"))

    app.switch_page("app_pages/station.py").run()
    assert not app.exception

    _log_in(app, CERTIFIED, "not the password")
    assert _errors(app) == ["badge or password not accepted"]
    assert "operator" not in app.session_state

    _log_in(app, EXPIRED, PASSWORD)
    assert not app.exception and not _errors(app)
    _start(app)
    [refused] = _errors(app)
    assert "certif" in refused and EXPIRED in refused
    assert "run" not in app.session_state
    app.button(key="log_out").click().run()
    assert "operator" not in app.session_state

    _log_in(app, CERTIFIED, PASSWORD)
    _start(app)
    assert not app.exception and not _errors(app)
    run_id = app.session_state["run"]
    assert "Rev 1: load coil, check die, stamp." in [m.value for m in app.markdown]
    assert any(HOLE in w.value for w in app.warning)

    app.text_input(key="consume_lot").input("COIL-H")
    app.number_input(key="consume_qty").set_value(40.0)
    app.button(key="consume").click().run()
    assert _errors(app) == ["lot COIL-H is on hold: only available lots can be consumed"]
    app.text_input(key="consume_lot").input("COIL-1")
    app.button(key="consume").click().run()
    assert not _errors(app) and app.success[-1].value == "40 taken from lot COIL-1; 260 left"

    app.number_input(key="good").set_value(95.0)
    app.number_input(key="scrap").set_value(2.0)
    app.button(key="report").click().run()
    assert not _errors(app)
    app.run()
    with session.begin():
        good, scrap = session.execute(text(
            "SELECT good_quantity, scrap_quantity FROM mes.operation_run WHERE id = :r"),
            {"r": run_id}).one()
    assert (good, scrap) == (95, 2)
    assert {m.label: m.value for m in app.metric} == {"Good": "95", "Scrap": "2",
                                                      "Planned": "100"}

    app.button(key="complete").click().run()
    [missing] = _errors(app)
    assert HOLE in missing and app.session_state["run"] == run_id

    for characteristic, sample, value in ((HOLE, 1, 10.0), (HOLE, 2, 10.02),
                                          (FLATNESS, 1, 0.1)):
        _inspect(app, characteristic, sample, value)
        assert not _errors(app), characteristic
    app.button(key="complete").click().run()
    assert not app.exception and not _errors(app)
    assert app.success[-1].value == f"run {run_id} completed"
    with session.begin():
        status, operator = session.execute(text(
            "SELECT r.status, p.badge FROM mes.operation_run r "
            "JOIN mes.person p ON p.id = r.operator_id WHERE r.id = :r"), {"r": run_id}).one()
    assert (status, operator) == ("completed", CERTIFIED)
