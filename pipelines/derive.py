"""Derive one day partition: read, compute, replace. The Dagster assets and `mes derive`
call this; it opens its own ADBC connection and commits once at the end."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from pipelines import queries
from pipelines.derivation import Derived, derive
from pipelines.reading import (
    DerivationSettings,
    plant_windows,
    read_inputs,
    reconciliation,
    write_partition,
)
from transactional.errors import NotFound


def derive_day(url: str, day: dt.date, *, settings: DerivationSettings | None = None,
               now: dt.datetime | None = None) -> Derived:
    settings = settings or DerivationSettings()
    with queries.connect(url) as conn:
        windows = plant_windows(conn, day)
        if windows.is_empty():
            return derive_nothing()
        inputs = read_inputs(conn, windows, now)
        derived = derive(inputs, micro_stop_seconds=settings.micro_stop_seconds)
        write_partition(conn, windows, derived, reconciliation(conn, windows, settings))
    return derived


def derive_nothing() -> Derived:
    import polars as pl

    return Derived(pl.DataFrame(), pl.DataFrame(), pl.DataFrame())


class EventNotFound(NotFound):
    """No derived downtime event has that number."""


@dataclass(frozen=True)
class Stop:
    """A derived downtime event as a classification names it, and the day partitions it
    touches (which must be derived again when its reason changes)."""

    equipment_id: int
    started_at: dt.datetime
    days: list[dt.date]


def stop_of(url: str, event_id: int, *, now: dt.datetime | None = None) -> Stop:
    """Downtime event `event_id`: its machine, start and days; EventNotFound otherwise."""
    with queries.connect(url) as conn:
        found = queries.frame(conn, queries.DOWNTIME_EVENT_SPAN, [event_id])
    if found.is_empty():
        raise EventNotFound(f"there is no downtime event {event_id}: `mes downtime list` "
                            "shows them")
    event = found.row(0, named=True)
    zone = ZoneInfo(event["timezone"])
    moment = now or dt.datetime.now(dt.UTC)
    first = event["started_at"].astimezone(zone).date()
    last = min(event["ended_at"] or moment, moment).astimezone(zone).date()
    return Stop(event["equipment_id"], event["started_at"],
                [first + dt.timedelta(days=n) for n in range((last - first).days + 1)])


def derive_again(url: str, days: list[dt.date], *, settings: DerivationSettings | None = None,
                now: dt.datetime | None = None) -> None:
    """Derive each of `days` again (after a classification changed a stop's reason)."""
    for day in days:
        derive_day(url, day, settings=settings, now=now)
