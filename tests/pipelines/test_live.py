"""The board's live shift equals what the derivation stores for the same moment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pipelines.live import LiveBoard, live_shift, top_reasons
from tests.pipelines.scenario import DAY, Raw, local, shift_history

BASE = ("planned_busy_seconds", "actual_production_seconds", "produced_quantity",
        "good_quantity", "scrap_quantity", "failure_count")
RATIOS = ("availability", "performance", "quality", "oee")


@pytest.fixture
def raw(use_database: str, tmp_path: Path) -> Raw:
    return shift_history(use_database, tmp_path)


def test_at_the_end_of_a_shift_the_board_shows_what_the_derivation_stores(raw: Raw) -> None:
    live = live_shift(raw.url, local(DAY, "14:00") - dt.timedelta(microseconds=1))
    raw.derive(DAY)

    row = live.kpis.filter(equipment="M1").row(0, named=True)
    stored = raw.kpi("M1", "shift", local(DAY, "06:00"))
    for name in BASE + RATIOS:
        assert row[name] == pytest.approx(stored[name]), name


def test_the_running_shift_so_far_by_hand(raw: Raw) -> None:
    live = live_shift(raw.url, local(DAY, "12:00"))

    row = live.kpis.filter(equipment="M1").row(0, named=True)
    assert row["period_start"] == local(DAY, "06:00")
    # 06:00-12:00 less the 30 min break is planned busy; 1 h broken down, 10 min idle.
    assert row["planned_busy_seconds"] == 5.5 * 3600
    assert row["availability"] == pytest.approx((5.5 - 1 - 10 / 60) / 5.5)
    assert row["performance"] == pytest.approx(2.0 * 1_010 / ((5.5 - 1 - 10 / 60) * 3600))
    assert row["quality"] == pytest.approx(1_000 / 1_010)
    line = live.kpis.filter(scope="line").row(0, named=True)
    assert line["equipment"] == "L" and line["produced_quantity"] == 1_010

    state = live.machines.filter(machine="M1").row(0, named=True)
    assert state["category"] == "idle" and state["for_seconds"] == 600
    assert top_reasons(live.stops).row(0, named=True) == {
        "reason": "BREAKDOWN", "stops": 1, "minutes": 60.0}


def test_outside_every_shift_the_board_has_no_kpis(raw: Raw) -> None:
    live = live_shift(raw.url, local(DAY, "23:00"))
    assert live.kpis.is_empty() and live.machines.is_empty()


def test_a_board_keeping_counts_between_refreshes_shows_what_a_fresh_read_shows(
        raw: Raw) -> None:
    board = LiveBoard(raw.url)
    try:
        first = board.shift(local(DAY, "10:03"))
        # More parts arrive, some for minutes the board has already summed (within LOOKBACK).
        raw.counts("M2", local(DAY, "10:02"), good=50, reject=2,
                   every=dt.timedelta(seconds=3))
        for now in (local(DAY, "10:05"), local(DAY, "10:07") + dt.timedelta(seconds=30)):
            kept = board.shift(now)
            fresh = live_shift(raw.url, now)
            for name in BASE + RATIOS:
                assert kept.kpis[name].to_list() == pytest.approx(fresh.kpis[name].to_list(),
                                                                   nan_ok=True), name
        assert kept.kpis.filter(equipment="M2")["produced_quantity"].item() == 52
        assert first.kpis.filter(equipment="M2")["produced_quantity"].item() == 0
    finally:
        board.close()
