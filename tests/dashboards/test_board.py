"""The supervisor board: its body at a fixed moment against the live derivation and a hand
computation, and the page itself on data written just now."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.board import percent
from pipelines.live import live_shift
from tests.pipelines.scenario import BERLIN, DAY, Raw, local, shift_history

NOON = local(DAY, "12:00")


def board_at(moment: "dt.datetime") -> None:  # noqa: UP037 (AppTest runs the source alone)
    from dashboards import board, data

    board.show(data.live(moment))


@pytest.fixture
def raw(use_database: str, tmp_path: Path) -> Raw:
    return shift_history(use_database, tmp_path)


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def test_the_board_shows_the_live_shift_of_every_line_and_machine(raw: Raw) -> None:
    import streamlit as st

    st.cache_data.clear()
    app = AppTest.from_function(board_at, args=(NOON,), default_timeout=60).run()

    assert not app.exception
    shown = _metrics(app)
    expected = live_shift(raw.url, NOON).kpis
    for row in expected.to_dicts():
        name = row["equipment"]
        for label, column in (("OEE", "oee"), ("A", "availability"), ("P", "performance"),
                              ("Q", "quality")):
            assert shown[f"{name} {label}"] == percent(row[column]), (name, label)
    # By hand: 5.5 h planned busy; 1 h broken down and 10 min idle.
    assert shown["M1 A"] == f"{(5.5 - 1 - 10 / 60) / 5.5 * 100:.1f} %"
    assert shown["M1 Q"] == f"{1000 / 1010 * 100:.1f} %"
    assert shown["M2 A"] == "100.0 %" and shown["M2 OEE"] == "0.0 %"
    assert [h.value for h in app.header] == ["Line L"]
    assert "idle · for 10 min" in " ".join(m.value for m in app.markdown)
    top = app.dataframe[0].value
    assert list(top["reason"]) == ["BREAKDOWN", "unclassified"]
    assert list(top["minutes"]) == [60.0, 10.0]


def test_the_board_page_follows_the_hypertables_live(app: AppTest, raw: Raw) -> None:
    """The page as served (default page), on states written just now: a new state row is
    on the board at the next refresh."""
    import streamlit as st

    now = dt.datetime.now(dt.UTC)
    raw.states("M2", (now - dt.timedelta(minutes=3), 5, 7))
    app.run()
    assert not app.exception
    assert app.title[0].value == "Shift board"
    today = now.astimezone(BERLIN).date()

    def between(start: str, end: str) -> bool:
        return local(today, start) <= now < local(today, end)

    if not between("06:00", "22:00"):  # the plant's two shifts
        assert app.info and "No shift" in app.info[0].value
        return
    if not (between("06:03", "10:00") or between("10:33", "14:00")
            or between("14:03", "22:00")):
        # In the lunch break (planned), or the stop began in the shift or break before.
        return
    assert "STOPPED · BREAKDOWN · for 3 min" in " ".join(m.value for m in app.markdown)

    raw.states("M2", (dt.datetime.now(dt.UTC), 1, None))
    st.cache_data.clear()
    app.run()
    assert not app.exception
    assert "running · for 0 min" in " ".join(m.value for m in app.markdown)
