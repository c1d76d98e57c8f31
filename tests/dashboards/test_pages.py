"""Every page on real data: no exception, and the numbers shown are the services' numbers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from tests.transactional.shop_floor import (
    CERTIFIED,
    FLATNESS,
    HOLE,
    ORDER,
    ShopFloor,
    acting_as,
    add_lot,
)
from transactional import overview, spc
from transactional.dispatch import dispatch_list
from transactional.orders import report
from transactional.quality import record_inspection


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_orders_page_shows_each_order_against_plan_and_the_dispatch_list(
        app: AppTest, session: Session, run_id: int) -> None:
    with acting_as(session, CERTIFIED):
        report(session, run_id, 40, 3)
    with session.begin():
        (expected,) = overview.order_progress(session)
        plan = dispatch_list(session, "L1")

    app.switch_page("app_pages/orders.py").run()

    assert not app.exception
    assert _metrics(app) == {"Orders": "1", "Running operations": "1", "Late": "0"}
    orders = app.dataframe[0].value
    assert list(orders["order"]) == [ORDER]
    row = orders.iloc[0]
    assert (row["planned"], row["good (last operation)"], row["scrap"], row["runs"]) == (
        expected.planned_quantity, expected.good_quantity, expected.scrap_quantity, 1)
    assert app.selectbox[0].options == ["L1", "L2"]
    # The dispatch list of L1: its machines as the planner sees them.
    machines = app.dataframe[2].value
    assert list(machines["machine"]) == [machine.machine for machine in plan.machines]
    assert "PRESS-1" in list(machines["machine"])


def test_quality_page_shows_holds_and_nonconformances(
        app: AppTest, session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    with acting_as(session, CERTIFIED):
        (opened,) = record_inspection(session, run_id, HOLE, 1, 10.3, CERTIFIED,
                                      "L-1").nonconformances

    app.switch_page("app_pages/quality.py").run()

    assert not app.exception
    metrics = _metrics(app)
    assert (metrics["Lots on hold or in quarantine"], metrics["Open nonconformances"]) == (
        "1", "1")
    held, lines = app.dataframe[0].value, app.dataframe[1].value
    assert list(held["lot"]) == ["L-1"] and list(held["held by"]) == [opened.code]
    assert list(lines["nonconformance"]) == [opened.code]
    assert list(lines["spec"]) == ["[9.9, 10.1]"] and list(lines["measured"]) == [10.3]


def test_genealogy_page_traces_a_lot_and_refuses_an_unknown_one_with_a_message(
        app: AppTest, floor: ShopFloor, session: Session, run_id: int) -> None:
    add_lot(session, "COIL-9", None, 300, material="STEEL-COIL")
    add_lot(session, "L-1", run_id, 50)

    app.switch_page("app_pages/genealogy.py").run()
    assert not app.exception and app.info  # asks for a lot first

    app.text_input[0].input("L-1").run()
    assert not app.exception
    assert "L-1" in app.code[0].value
    assert list(app.dataframe[0].value["lot"]) == ["L-1"]
    assert list(app.dataframe[1].value["machine"]) == ["PRESS-1"]

    app.text_input[0].input("NOPE").run()
    assert not app.exception
    assert [error.value for error in app.error] == ["no material lot NOPE"]


def test_quality_page_draws_an_individuals_chart_with_the_services_limits_and_violations(
        app: AppTest, session: Session, run_id: int) -> None:
    values = [10.0, 10.01, 9.99, 10.0, 10.02, 9.98, 10.01, 10.0, 9.99, 10.0, 10.01, 10.09]
    with acting_as(session, CERTIFIED):
        for sample, value in enumerate(values, start=1):
            record_inspection(session, run_id, HOLE, sample, value, CERTIFIED)
    with session.begin():
        today = session.execute(text("SELECT now()")).scalar_one()
        window = (today - dt.timedelta(days=1), today + dt.timedelta(days=1))
        expected = spc.individuals_chart(session, characteristic=HOLE, baseline=window,
                                         judged=window)

    app.switch_page("app_pages/quality.py").run()

    assert not app.exception
    assert app.selectbox(key="spc_subject").value == f"inspection: {FLATNESS}"
    app.selectbox(key="spc_subject").set_value(f"inspection: {HOLE}").run()
    assert not app.exception
    metrics = _metrics(app)
    assert expected.capability is not None
    assert metrics["Points"] == "12"
    assert metrics["Cpk"] == f"{expected.capability.cpk:.2f}"
    assert metrics["Pp"] == f"{expected.capability.pp:.2f}"
    violations = app.dataframe[2].value
    assert list(violations["rule"]) == [v.rule for v in expected.violations]
    assert "WE1" in list(violations["rule"])
