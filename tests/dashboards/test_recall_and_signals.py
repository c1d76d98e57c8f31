"""Exposure on the genealogy page and the process signals page, on the hand-built history
of the exposure tests."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from pipelines import reports
from tests.transactional.test_exposure import DAY, SIGNAL, history
from transactional.exposure import exposed_lots

__all__ = ["history"]  # the fixture
FIRST = DAY.date()


def test_genealogy_page_lists_the_lots_made_while_a_signal_was_out_of_limits(
        app: AppTest, session: Session, history: dict[str, int]) -> None:
    app.switch_page("app_pages/genealogy.py").run()
    app.selectbox(key="exposure_signal").set_value(SIGNAL)
    app.date_input(key="exposure_days").set_value((FIRST, FIRST)).run()

    assert not app.exception and not app.error
    with session.begin():
        since = dt.datetime.combine(FIRST, dt.time(), dt.UTC) - dt.timedelta(hours=2)
        expected = exposed_lots(session, SIGNAL, since, since + dt.timedelta(days=1))
    lots = app.dataframe[0].value
    assert set(lots["lot"]) == {lot.code for lot in expected.made + expected.downstream}
    assert "LOT-B" in set(lots["lot"]) and "BOX-1" in set(lots["lot"])
    assert list(app.dataframe[1].value["run"]) == [run.run_id for run in expected.runs]
    assert app.get("download_button")


def test_signals_page_draws_a_signal_downsampled_with_its_runs(
        app: AppTest, use_database: str, history: dict[str, int]) -> None:
    app.switch_page("app_pages/signals.py").run()
    app.multiselect(key="signals").set_value([SIGNAL])
    app.date_input(key="signals_days").set_value((FIRST, FIRST)).run()

    assert not app.exception
    start = dt.datetime.combine(FIRST, dt.time(), dt.UTC) - dt.timedelta(hours=1)
    trend, runs = reports.signal_trend(use_database, [SIGNAL], start,
                                       start + dt.timedelta(days=1))
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Samples"] == str(trend["samples"].sum()) == "20"
    assert int(metrics["Points drawn"]) <= 500
    assert len(app.dataframe[1].value) == runs.height == 4
