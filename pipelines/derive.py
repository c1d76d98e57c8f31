"""Derive one partition (a day, of one site or all): read, compute, replace. The Dagster
assets, `mes derive` and the benchmarks call this; it opens its own ADBC connection and
commits once at the end."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import polars as pl

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


@dataclass(frozen=True)
class Written:
    """What one derivation wrote: its windows (none when the plant has no machines in the
    partition), the derived frames and the count reconciliation rows."""

    windows: pl.DataFrame
    derived: Derived
    reconciled: pl.DataFrame


def derive_day(url: str, day: dt.date, *, site: str | None = None,
               settings: DerivationSettings | None = None,
               now: dt.datetime | None = None) -> Written:
    """Derive `day` (of `site`, else of every site) and replace its rows in one transaction.
    The counts are summed on connections of their own beside the rest of the reading."""
    settings = settings or DerivationSettings()
    with queries.connect(url) as conn:
        windows = plant_windows(conn, day, site=site)
        if windows.is_empty():
            return Written(windows, derive_nothing(), pl.DataFrame())
        inputs = read_inputs(conn, windows, now, counts_url=url)
        derived = derive(inputs, micro_stop_seconds=settings.micro_stop_seconds)
        reconciled = reconciliation(conn, windows, settings)
        write_partition(conn, windows, derived, reconciled)
    return Written(windows, derived, reconciled[1])


def plant_sites(url: str) -> list[str]:
    """The codes of the plant's sites."""
    with queries.connect(url) as conn:
        return [str(code) for code in queries.frame(conn, queries.SITES)["code"].to_list()]


def derive_nothing() -> Derived:
    return Derived(pl.DataFrame(), pl.DataFrame(), pl.DataFrame())


class EventNotFound(NotFound):
    """No derived downtime event has that number."""


@dataclass(frozen=True)
class Stop:
    """A derived downtime event as a classification names it, and the day partitions it
    touches (which must be derived again when its reason changes)."""

    equipment_id: int
    site: str
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
    return Stop(event["equipment_id"], event["site"], event["started_at"],
                [first + dt.timedelta(days=n) for n in range((last - first).days + 1)])


def derive_again(url: str, stop: Stop, *, settings: DerivationSettings | None = None,
                 now: dt.datetime | None = None) -> None:
    """Derive the days of `stop`'s site that it touches again (after a classification
    changed its reason)."""
    for day in stop.days:
        derive_day(url, day, site=stop.site, settings=settings, now=now)
