"""The downtime page on derived data: Pareto and MTBF/MTTR as the pipelines compute them,
and a supervisor classifying a stop, after which the numbers follow."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from pipelines import reports
from tests.conftest import PASSWORD, give_password
from tests.pipelines.scenario import DAY, Raw, local
from tests.transactional.shop_floor import CERTIFIED, SUPERVISOR, ShopFloor

START, END = local(DAY, "00:00"), local(DAY + dt.timedelta(days=1), "00:00")


@pytest.fixture
def raw(floor: ShopFloor, session: Session, use_database: str) -> Raw:
    raw = Raw(use_database)
    raw.states("PRESS-1", (local(DAY, "05:00"), 1, None), (local(DAY, "07:00"), 5, None),
               (local(DAY, "07:30"), 1, None), (local(DAY, "10:00"), 5, None),
               (local(DAY, "10:20"), 1, None))
    raw.counts("PRESS-1", local(DAY, "06:00"), good=500, every=dt.timedelta(seconds=20))
    raw.derive(DAY)
    return raw


def _open(app: AppTest) -> AppTest:
    app.switch_page("app_pages/downtime.py").run()
    app.date_input(key="downtime_days").set_value((DAY, DAY)).run()
    return app


def test_downtime_page_shows_the_pareto_and_mtbf_mttr_of_the_pipelines(
        app: AppTest, raw: Raw) -> None:
    _open(app)

    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"Unplanned stops": "2", "Unplanned downtime": "50 min",
                       "Unclassified": "50 min"}
    expected = reports.downtime_pareto(raw.url, START, END)
    shown = app.dataframe[0].value
    assert list(shown["reason"]) == list(expected["reason"])
    over = reports.kpis_over(raw.url, START, END).filter(equipment="PRESS-1").row(0, named=True)
    press = app.dataframe[1].value.set_index("machine").loc["PRESS-1"]
    assert press["failure_count"] == over["failure_count"] == 2
    assert press["MTTR min"] == round(over["mttr_seconds"] / 60, 1) == 25.0


def test_a_supervisor_classifies_a_stop_and_the_numbers_follow(
        app: AppTest, raw: Raw, use_database: str) -> None:
    give_password(use_database, SUPERVISOR)
    give_password(use_database, CERTIFIED)
    _open(app)
    assert list(app.dataframe[2].value["minutes"]) == [30.0, 20.0]

    app.text_input(key="badge").input(SUPERVISOR)
    app.text_input(key="secret").input(PASSWORD)
    app.button(key="log_in").click().run()
    app.selectbox(key="reason").set_value("BREAKDOWN-MECH")
    app.button(key="classify").click().run()

    assert not app.exception and not app.error
    assert app.success[-1].value.startswith(f"stop {app.selectbox(key='event').value} "
                                            "classified BREAKDOWN-MECH")
    app.run()
    reasons = dict(zip(app.dataframe[0].value["reason"], app.dataframe[0].value["minutes"],
                       strict=True))
    assert (reasons["BREAKDOWN-MECH"], reasons["unclassified"]) == (30.0, 20.0)
    pareto = reports.downtime_pareto(raw.url, START, END).filter(~pl.col("planned"))
    assert dict(zip(pareto["reason"], pareto["minutes"], strict=True)) == {
        "BREAKDOWN-MECH": 30.0, "unclassified": 20.0}
