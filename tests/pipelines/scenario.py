"""A small plant for the pipeline tests and helpers that write raw rows straight into the
hypertables, as the collectors would."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from mes.db import session_factory
from pipelines.derive import derive_day
from transactional.audit import acting
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

BERLIN = ZoneInfo("Europe/Berlin")

PLANT = """
[enterprise]
code = "E"
name = "Test enterprise"

[[shift_calendars]]
code = "CAL"
name = "One shift every day"
timezone = "Europe/Berlin"

[[shift_calendars.shifts]]
code = "DAY"
name = "Day shift"
start = "06:00"
end = "14:00"
weekdays = [1, 2, 3, 4, 5, 6, 7]
breaks = [{ name = "Lunch", start = "10:00", minutes = 30, reason = "BREAK" }]

[[shift_calendars.shifts]]
code = "LATE"
name = "Late shift"
start = "14:00"
end = "22:00"
weekdays = [1, 2, 3, 4, 5, 6, 7]

[[downtime_reasons]]
code = "PLANNED"
name = "Planned"
planned = true

[[downtime_reasons]]
code = "BREAK"
name = "Break"
parent = "PLANNED"

[[downtime_reasons]]
code = "PM"
name = "Planned maintenance"
parent = "PLANNED"

[[downtime_reasons]]
code = "BREAKDOWN"
name = "Breakdown"
planned = false

[[state_models]]
code = "STD"
name = "Standard"
states = [
  { code = 0, name = "Off", category = "offline" },
  { code = 1, name = "Running", category = "running" },
  { code = 2, name = "Idle", category = "idle" },
  { code = 3, name = "Setup", category = "setup" },
  { code = 5, name = "Fault", category = "unplanned_stop" },
]
fault_codes = [{ codes = [7], reason = "BREAKDOWN" }]

[[materials]]
code = "PART"
name = "Part"
kind = "product"
unit = "pcs"

[[materials]]
code = "OTHER"
name = "Other part"
kind = "product"
unit = "pcs"

[[personnel_classes]]
code = "OPERATOR"
name = "Machine operator"

[[personnel]]
badge = "100"
name = "Olga Operator"
classes = ["OPERATOR"]

[[sites]]
code = "S"
name = "Site"
calendar = "CAL"

[[areas]]
code = "A"
name = "Area"
site = "S"

[[lines]]
code = "L"
name = "Line"
area = "A"
type = "T"

[[machines]]
code = "M1"
name = "Machine 1"
line = "L"
state_model = "STD"
ideal_cycle_times = { "PART" = 2.0 }

[[machines]]
code = "M2"
name = "Machine 2"
line = "L"
state_model = "STD"
ideal_cycle_times = { "PART" = 2.0, "OTHER" = 4.0 }
"""

# A second site with one machine, on the same calendar.
SECOND_SITE = """
[[sites]]
code = "T"
name = "Second site"
calendar = "CAL"

[[areas]]
code = "B"
name = "Area B"
site = "T"

[[lines]]
code = "L2"
name = "Line 2"
area = "B"
type = "T"

[[machines]]
code = "M3"
name = "Machine 3"
line = "L2"
state_model = "STD"
ideal_cycle_times = { "PART" = 2.0 }
"""

DAY = dt.date(2026, 3, 3)


def load_test_plant(url: str, tmp_path: Path, plant: str = PLANT) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(plant)
    with session_factory(url)() as session, session.begin():
        acting(session, ADMINISTRATION)
        load_plant(session, read_plant_file(path))


def local(day: dt.date, hhmm: str) -> dt.datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=BERLIN)


class Raw:
    """Writes rows into the hypertables and plant tables for one test database."""

    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url) as conn:
            self.ids: dict[str, int] = dict(conn.execute(
                "SELECT code, id FROM mes.equipment").fetchall())

    def states(self, machine: str, *changes: tuple[dt.datetime, int, int | None]) -> None:
        with psycopg.connect(self.url) as conn:
            conn.cursor().executemany(
                "INSERT INTO ts.equipment_state (ts, equipment_id, state, reason_code) "
                "VALUES (%s, %s, %s, %s)",
                [(ts, self.ids[machine], state, reason) for ts, state, reason in changes])

    def counts(self, machine: str, start: dt.datetime, good: int, reject: int = 0,
               every: dt.timedelta = dt.timedelta(seconds=1)) -> None:
        """One part a row from `start`: `good` good ones, then `reject` rejects."""
        rows = [(start + i * every, self.ids[machine], 1, 0) for i in range(good)]
        rows += [(start + (good + i) * every, self.ids[machine], 0, 1) for i in range(reject)]
        with psycopg.connect(self.url) as conn, conn.cursor() as cursor, cursor.copy(
                "COPY ts.production_count (ts, equipment_id, good, reject) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def gap(self, machine: str, start: dt.datetime, end: dt.datetime | None) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute("INSERT INTO ts.collection_gap (equipment_id, source, gap_start, "
                         "gap_end, cause) VALUES (%s, 'test', %s, %s, 'source_lost')",
                         (self.ids[machine], start, end))

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def kpi(self, machine: str, period: str, start: dt.datetime) -> dict[str, object]:
        with psycopg.connect(self.url) as conn:
            cursor = conn.execute(
                "SELECT * FROM derived.kpi WHERE equipment_id = %s AND period = %s "
                "AND period_start = %s", (self.ids[machine], period, start))
            names = [d.name for d in cursor.description or ()]
            row = cursor.fetchone()
        assert row is not None, f"no {period} KPI row for {machine} at {start}"
        return dict(zip(names, row, strict=True))

    def derive(self, day: dt.date = DAY, now: dt.datetime | None = None) -> None:
        derive_day(self.url, day, now=now or dt.datetime(2030, 1, 1, tzinfo=dt.UTC))


def shift_history(url: str, tmp_path: Path) -> Raw:
    """The test plant with a day shift under way on DAY: M1 running from 05:00, broken down
    08:00-09:00 (fault code 7), idle from 11:50, 1,000 good parts and 10 rejects every 10 s
    from 06:00; M2 running from 05:00 without counts."""
    load_test_plant(url, tmp_path)
    raw = Raw(url)
    raw.states("M1", (local(DAY, "05:00"), 1, None), (local(DAY, "08:00"), 5, 7),
               (local(DAY, "09:00"), 1, None), (local(DAY, "11:50"), 2, None))
    raw.counts("M1", local(DAY, "06:00"), good=1_000, reject=10,
               every=dt.timedelta(seconds=10))
    raw.states("M2", (local(DAY, "05:00"), 1, None))
    return raw
