"""Calendar arithmetic in each calendar's own time zone: local days, hours and shifts.

A local day runs from midnight to midnight, so it has 23 or 25 hours on DST days. Shift and
break times are wall-clock times: a shift 22:00-06:00 ends at 06:00 local time even when
the clocks change in between. Pure functions on small lists; no database, no Polars.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

HOUR = dt.timedelta(hours=1)


def local_day(day: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[midnight, next midnight) of `day` in `timezone`, as UTC instants."""
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def hours(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The starts of the hours in [start, end): elapsed hours, so a DST day has 23 or 25."""
    out = []
    at = start
    while at < end:
        out.append(at)
        at += HOUR
    return out


@dataclass(frozen=True)
class ShiftPattern:
    shift_id: int
    calendar_id: int
    code: str
    start: dt.timedelta          # from local midnight
    duration: dt.timedelta
    weekdays: frozenset[int]     # ISO weekdays on which it starts


@dataclass(frozen=True)
class BreakPattern:
    shift_id: int
    offset: dt.timedelta         # from the shift's start, wall clock
    duration: dt.timedelta
    downtime_reason_id: int | None


@dataclass(frozen=True)
class ShiftInstance:
    shift_id: int
    calendar_id: int
    code: str
    start: dt.datetime           # UTC
    end: dt.datetime


@dataclass(frozen=True)
class Span:
    start: dt.datetime           # UTC
    end: dt.datetime
    downtime_reason_id: int | None = None


def shift_instances(patterns: Iterable[ShiftPattern], timezone: str, start: dt.datetime,
                    end: dt.datetime) -> list[ShiftInstance]:
    """Every shift of the calendar that overlaps [start, end), whole (not clipped)."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date() - dt.timedelta(days=1)
    last = end.astimezone(zone).date()
    found = []
    day = first
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        for shift in patterns:
            if day.isoweekday() not in shift.weekdays:
                continue
            local_start = midnight + shift.start
            begins = local_start.astimezone(dt.UTC)
            ends = (local_start + shift.duration).astimezone(dt.UTC)
            if begins < end and ends > start:
                found.append(ShiftInstance(shift.shift_id, shift.calendar_id, shift.code,
                                           begins, ends))
        day += dt.timedelta(days=1)
    return sorted(found, key=lambda s: s.start)


def break_spans(instance: ShiftInstance, breaks: Iterable[BreakPattern],
                timezone: str) -> list[Span]:
    zone = ZoneInfo(timezone)
    local_start = instance.start.astimezone(zone)
    spans = []
    for shift_break in breaks:
        if shift_break.shift_id != instance.shift_id:
            continue
        begins = (local_start + shift_break.offset).astimezone(dt.UTC)
        ends = (local_start + shift_break.offset + shift_break.duration).astimezone(dt.UTC)
        spans.append(Span(begins, min(ends, instance.end), shift_break.downtime_reason_id))
    return spans
