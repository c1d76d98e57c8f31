"""`mes derive`, `mes kpi`, `mes downtime` and `mes pipelines`: the derived data of the
pipelines from the command line. KPI ratios come from `pipelines.kpi.compute_kpis`, the
one place that computes them; this module only reads, adds up and prints."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import polars as pl
import typer

from mes.cli.common import acting_session, fail, moment, user_errors
from mes.db import database_url
from mes.settings import get_settings
from pipelines import queries
from pipelines.cli_keys import KPI_JSON_KEYS
from pipelines.derive import derive_again, stop_of
from pipelines.instance import dagster_environment
from pipelines.kpi import compute_kpis, sum_base
from pipelines.materialize import derive_days
from transactional.downtime import classify_stop

derive_app = typer.Typer(add_completion=False)
kpi_app = typer.Typer(add_completion=False)
downtime_app = typer.Typer(no_args_is_help=True, add_completion=False)
pipelines_app = typer.Typer(no_args_is_help=True, add_completion=False)

JSON_KEYS = KPI_JSON_KEYS


def _moment(option: str, value: str, zone: ZoneInfo) -> dt.datetime:
    """An ISO date (local midnight in `zone`), or a time with its zone as `moment` reads it."""
    if len(value) == 10:
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=zone)
        except ValueError:
            pass
    parsed = moment(option, value)
    assert parsed is not None  # a value was given
    return parsed


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise fail(f"{value!r} is not a date like 2026-03-02") from None


@derive_app.command()
@user_errors
def derive(
    first: Annotated[str, typer.Option("--from", help="first day, like 2026-03-02")],
    last: Annotated[str | None, typer.Option("--to", help="last day (default: --from)")] = None,
) -> None:
    """Derive machine time, downtime events, KPIs and count reconciliation for each day, in
    this process, with the Dagster definitions the UI shows."""
    days = derive_days(database_url(), _date(first), _date(last or first))
    for day in days:
        rows = ", ".join(f"{count} {asset}" for asset, count in day.rows.items())
        checks = ("all checks passed" if not day.failed_checks
                  else "checks failed: " + ", ".join(day.failed_checks))
        where = f" {day.site}" if day.site else ""
        typer.echo(f"{day.day}{where}: {rows}; {checks}")


def _machine_zone(conn: queries.Connection, machine: str) -> tuple[int, ZoneInfo]:
    found = queries.frame(conn, queries.MACHINES).filter(pl.col("machine") == machine)
    if found.is_empty():
        raise fail(f"there is no machine {machine!r}")
    return int(found["equipment_id"][0]), ZoneInfo(found["timezone"][0])


def kpi_table(machine: str, start: str, end: str, by: str) -> list[dict[str, Any]]:
    """The derived KPIs of `machine` per `by` period overlapping [start, end)."""
    with queries.connect(database_url()) as conn:
        _, zone = _machine_zone(conn, machine)
        rows = queries.frame(conn, queries.KPI_ROWS, [
            machine, by, _moment("--from", start, zone), _moment("--to", end, zone)])
    if by == "shift" and not rows.is_empty():
        # A shift across midnight is stored as one part per day: add the parts up.
        rows = sum_base(rows.sort("period_start"),
                        ["equipment", "shift_code", "shift_started_at"]).join(
            rows.group_by("shift_started_at").agg(pl.col("period_start").min(),
                                                  pl.col("period_end").max()),
            on="shift_started_at")
    rows = compute_kpis(rows) if not rows.is_empty() else rows
    table = []
    for row in rows.sort("period_start").to_dicts():
        record = {key: row.get(key) for key in JSON_KEYS}
        record["machine"] = row["equipment"]
        record["shift"] = row.get("shift_code")
        for key in ("period_start", "period_end"):
            record[key] = row[key].astimezone(zone).isoformat()
        table.append(record)
    return table


@kpi_app.command()
@user_errors
def kpi(
    machine: Annotated[str, typer.Option(help="the machine's code")],
    start: Annotated[str, typer.Option("--from", help="date or time with offset")],
    end: Annotated[str, typer.Option("--to", help="date or time with offset (exclusive)")],
    by: Annotated[str, typer.Option(metavar="hour|shift|day", help="period")] = "day",
    as_json: Annotated[bool, typer.Option("--json", help="an array of objects")] = False,
) -> None:
    """A machine's ISO 22400-2 KPIs per hour, shift or day, from the derived tables."""
    if by not in ("hour", "shift", "day"):
        raise fail(f"--by {by!r}: use hour, shift or day")
    table = kpi_table(machine, start, end, by)
    if as_json:
        typer.echo(json.dumps(table, indent=1))
        return
    if not table:
        typer.echo(f"no derived KPIs for {machine} then: run `mes derive` for those days")
        return

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.1f} %"

    typer.echo(f"{'period':<27} {'shift':<6} {'busy h':>7} {'run h':>6} {'made':>7} "
               f"{'good':>7} {'A':>8} {'P':>8} {'Q':>8} {'OEE':>8}")
    for row in table:
        typer.echo(f"{row['period_start'][:16]} - {row['period_end'][11:16]}    "
                   f"{row['shift'] or '-':<6} {row['planned_busy_seconds'] / 3600:>7.2f} "
                   f"{row['actual_production_seconds'] / 3600:>6.2f} "
                   f"{row['produced_quantity']:>7} {row['good_quantity']:>7} "
                   f"{pct(row['availability']):>8} {pct(row['performance']):>8} "
                   f"{pct(row['quality']):>8} {pct(row['oee']):>8}")


@downtime_app.command("list")
@user_errors
def downtime_list(
    start: Annotated[str, typer.Option("--from", help="date or time with offset")],
    end: Annotated[str, typer.Option("--to", help="date or time with offset (exclusive)")],
    machine: Annotated[str | None, typer.Option(help="one machine's code")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="an array of objects")] = False,
) -> None:
    """Derived stops overlapping the time span, with reason and the run at the time."""
    zone = ZoneInfo(get_settings().pipeline_timezone)
    with queries.connect(database_url()) as conn:
        if machine is not None:
            _, zone = _machine_zone(conn, machine)
        events = queries.frame(conn, queries.DOWNTIME_EVENTS, [
            machine, _moment("--from", start, zone), _moment("--to", end, zone)])
    records = [{key: (value.astimezone(zone).isoformat() if isinstance(value, dt.datetime)
                      else value) for key, value in row.items()} for row in events.to_dicts()]
    if as_json:
        typer.echo(json.dumps(records, indent=1))
        return
    typer.echo(f"{'event':>6} {'machine':<10} {'start':<16} {'minutes':>8} {'category':<15} "
               f"{'reason':<16} {'source':<12} {'order':<8}")
    for row in records:
        minutes = float(row["duration_seconds"]) / 60
        flags = (" planned" if row["planned"] else "") + (" micro" if row["micro_stop"] else "")
        typer.echo(f"{row['id']:>6} {row['machine']:<10} {row['started_at'][:16]:<16} "
                   f"{minutes:>8.1f}{'+' if row['ended_at'] is None else ' '}"
                   f"{row['category']:<15} {row['reason'] or '-':<16} {row['reason_source']:<12} "
                   f"{row['work_order'] or '-':<8}{flags}")


@downtime_app.command("classify")
@user_errors
def downtime_classify(
    event: Annotated[int, typer.Argument(help="the event's number (mes downtime list)")],
    reason: Annotated[str, typer.Option(help="downtime reason code")],
    note: Annotated[str | None, typer.Option(help="what happened, in words")] = None,
) -> None:
    """Give a stop its reason, as the person logged in (audited); the days it touches are
    derived again at once."""
    url = database_url()
    stop = stop_of(url, event)
    with acting_session() as (session, person):
        classify_stop(session, stop.equipment_id, stop.started_at, reason, note)
    derive_again(url, stop)
    typer.echo(f"event {event} classified {reason} by {person.badge}; KPIs derived again for "
               + ", ".join(day.isoformat() for day in stop.days))


@pipelines_app.command("env")
@user_errors
def pipelines_env() -> None:
    """Print the environment `dagster dev` needs (export lines for a shell)."""
    for name, value in dagster_environment(database_url()).items():
        typer.echo(f"export {name}={value!s}")
