"""Hand-computed days: exact availability, performance, quality and OEE (to 1e-9).

Plant (tests/pipelines/scenario.py): Europe/Berlin, shift DAY 06:00-14:00 with lunch
10:00-10:30, shift LATE 14:00-22:00, every day; M1 has one ideal cycle time (2 s).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.pipelines.scenario import DAY, Raw, load_test_plant, local

RUNNING, FAULT, OFF = 1, 5, 0


@pytest.fixture
def raw(db_url: str, tmp_path: Path) -> Raw:
    load_test_plant(db_url, tmp_path)
    return Raw(db_url)


def close(value: object, expected: float) -> bool:
    return isinstance(value, float) and abs(value - expected) < 1e-9


def test_a_break_is_planned_time_and_a_fault_is_lost_time(raw: Raw) -> None:
    raw.states("M1", (local(DAY, "05:00"), RUNNING, None), (local(DAY, "08:00"), FAULT, 7),
               (local(DAY, "08:30"), RUNNING, None), (local(DAY, "22:00"), OFF, None))
    raw.counts("M1", local(DAY, "06:00"), good=9_000, reject=100, every=dt.timedelta(seconds=2))

    raw.derive()

    shift = raw.kpi("M1", "shift", local(DAY, "06:00"))
    # planned busy time 8 h - 30 min lunch; running 06:00-08:00 and 08:30-14:00 less lunch
    pbt, apt = 7.5 * 3600, 7.0 * 3600
    assert shift["planned_busy_seconds"] == pbt
    assert shift["actual_production_seconds"] == apt
    assert (shift["produced_quantity"], shift["good_quantity"]) == (9_100, 9_000)
    assert close(shift["availability"], apt / pbt)
    assert close(shift["performance"], 2.0 * 9_100 / apt)
    assert close(shift["quality"], 9_000 / 9_100)
    assert close(shift["oee"], (apt / pbt) * (2.0 * 9_100 / apt) * (9_000 / 9_100))
    assert shift["failure_count"] == 1
    assert close(shift["mttr_seconds"], 1800.0)
    assert close(shift["mtbf_seconds"], apt)
    day = raw.kpi("M1", "day", local(DAY, "00:00"))
    assert day["planned_busy_seconds"] == 15.5 * 3600
    assert day["actual_production_seconds"] == 15.0 * 3600
