"""Partitions: a day, and the site when the plant has several.

A day key is a local date; each machine's window is that date in its own calendar's time
zone (23 or 25 hours on DST days). With more than one site the partitions are site x day
(`MultiPartitionsDefinition`), so each site's days are derived, retried and backfilled on
their own, and dagster.yaml allows one run per site at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import dagster as dg

# The derived tables' time columns, as Dagster's partition_expr metadata names them.
PARTITION_EXPR = {"machine_time": "starts_at", "downtime_events": "started_at",
                  "kpis": "period_start", "count_reconciliation": "started_at"}
DATE = "date"
SITE = "site"


def daily_partitions(timezone: str, start_date: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone=timezone,
                                        end_offset=1)


def plant_partitions(timezone: str, start_date: str,
                     sites: list[str]) -> dg.PartitionsDefinition[str]:
    """Days; site x day when there is more than one site."""
    days = daily_partitions(timezone, start_date)
    if len(sites) < 2:
        return days
    return dg.MultiPartitionsDefinition({DATE: days,
                                         SITE: dg.StaticPartitionsDefinition(sites)})


@dataclass(frozen=True)
class Scope:
    """What one partition derives: a day, of one site or (None) of every site."""

    day: dt.date
    site: str | None = None

    def key(self) -> str | dg.MultiPartitionKey:
        if self.site is None:
            return self.day.isoformat()
        return dg.MultiPartitionKey({DATE: self.day.isoformat(), SITE: self.site})


def partition_scope(key: str | dg.MultiPartitionKey) -> Scope:
    if isinstance(key, dg.MultiPartitionKey):
        return Scope(dt.date.fromisoformat(key.keys_by_dimension[DATE]),
                     key.keys_by_dimension[SITE])
    return Scope(dt.date.fromisoformat(key))


def scopes(first: dt.date, last: dt.date, sites: list[str]) -> list[Scope]:
    """Every partition from `first` to `last`, site by site within a day."""
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    return [Scope(day, site) for day in days
            for site in (sites if len(sites) > 1 else [None])]
