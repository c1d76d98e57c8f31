"""Keeping today's partition a few minutes behind, and raw data retention, on schedules.

Yesterday is derived again with today (a one-day lookback), so a stop that began before
midnight gets its end, and late rows of the night land; with several sites, each site's
two days are a run of their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.partitions import scopes


def refresh_schedule(job: dg.UnresolvedAssetJobDefinition, timezone: str,
                     sites: list[str], minutes: int = 5) -> dg.ScheduleDefinition:
    @dg.schedule(name="refresh_today", cron_schedule=f"*/{minutes} * * * *", job=job,
                 execution_timezone=timezone,
                 default_status=dg.DefaultScheduleStatus.STOPPED)
    def refresh_today(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        moment = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        today = moment.astimezone(ZoneInfo(timezone)).date()
        for scope in scopes(today - dt.timedelta(days=1), today, sites):
            key = scope.key()
            yield dg.RunRequest(partition_key=key, run_key=f"{key}@{moment.isoformat()}")

    return refresh_today


def retention_schedule(job: dg.JobDefinition, timezone: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(name="raw_retention_nightly", job=job,
                                 cron_schedule="30 3 * * *", execution_timezone=timezone,
                                 default_status=dg.DefaultScheduleStatus.STOPPED)


def work_request_schedule(job: dg.UnresolvedAssetJobDefinition,
                          timezone: str) -> dg.ScheduleDefinition:
    """Triggers every 5 minutes, a minute after the refresh (which derives the stops)."""
    return dg.ScheduleDefinition(name="cmms_work_requests_every_5_minutes", job=job,
                                 cron_schedule="1-59/5 * * * *", execution_timezone=timezone,
                                 default_status=dg.DefaultScheduleStatus.STOPPED)
