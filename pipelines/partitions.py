"""Day partitions: a partition key is a local date; each machine's window is that date in
its own calendar's time zone (23 or 25 hours on DST days)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

# The derived tables' time columns, as Dagster's partition_expr metadata names them.
PARTITION_EXPR = {"machine_time": "starts_at", "downtime_events": "started_at",
                  "kpis": "period_start", "count_reconciliation": "started_at"}


def daily_partitions(timezone: str, start_date: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone=timezone,
                                        end_offset=1)


def partition_day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)
