"""`mes maintenance`: maintenance windows from the CMMS, which dispatching honours, and
work requests to it (triggers, delivery, their status back)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from mes.cli.common import acting_session, moment, session, transaction, user_errors
from mes.settings import get_settings
from transactional.audit import acting
from transactional.cmms_delivery import Delivery, deliver
from transactional.condition import monitor
from transactional.maintenance import import_window_file, list_windows
from transactional.permissions import ADMINISTRATION
from transactional.work_requests import evaluate, import_status_file, list_requests

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("import")
@user_errors
def maintenance_import(
    path: Annotated[Path, typer.Argument(
        help="CMMS export, .json (a list) or .csv, with id, machine, starts_at, ends_at, "
             "reason")],
) -> None:
    """Import maintenance windows (all or nothing; the same file again changes nothing)."""
    with acting_session() as (opened, _person):
        report = import_window_file(opened, path)
    typer.echo(f"{path}: " + ("imported" if report.changed else "already up to date")
               + f"; {report.summary()}")


@app.command("list")
@user_errors
def maintenance_list(
    machine: Annotated[str | None, typer.Option(help="only this machine's windows")] = None,
    all_windows: Annotated[bool, typer.Option(
        "--all", help="past windows too (default: only those not over yet)")] = False,
) -> None:
    """Maintenance windows by start time."""
    with session() as opened:
        windows = list_windows(opened, machine=machine,
                               ending_after=None if all_windows else dt.datetime.now(dt.UTC))
    for window in windows:
        typer.echo(f"{window.external_id:<16} {window.machine:<10} "
                   f"{window.starts_at.isoformat()} - {window.ends_at.isoformat()}  "
                   f"{window.reason or ''}".rstrip())
    if not windows:
        typer.echo("no maintenance windows")


@contextmanager
def system_job() -> Iterator[Session]:
    """One transaction as the application role, recorded as the system account: the
    triggers are the plant's rules at work, not a person's decision."""
    with transaction() as opened:
        acting(opened, ADMINISTRATION)
        yield opened


def _delivery() -> Delivery:
    settings = get_settings()
    return Delivery(outbox=settings.cmms_outbox_path, url=settings.cmms_url,
                    attempts=settings.cmms_post_attempts,
                    backoff_seconds=settings.cmms_backoff_seconds)


@app.command("evaluate")
@user_errors
def maintenance_evaluate(
    at: Annotated[str | None, typer.Option(
        help="judge up to this time (ISO 8601 with a zone); default now")] = None,
    lookback_hours: Annotated[float, typer.Option(
        min=0.1, help="how far back events are looked for")] = 24.0,
    send: Annotated[bool, typer.Option(
        help="write the outbox and POST to MES_CMMS_URL afterwards")] = True,
) -> None:
    """Run condition monitoring and the work request triggers; open or update requests
    (one open per machine and cause), then deliver them to the CMMS."""
    until = moment("--at", at) or dt.datetime.now(dt.UTC)
    since = until - dt.timedelta(hours=lookback_hours)
    with system_job() as opened:
        conditions = monitor(opened, since=since, until=until)
        report = evaluate(opened, at=until, lookback=until - since)
    typer.echo(f"{conditions} new condition events; {report.summary()}")
    if send:
        with system_job() as opened:
            delivered = deliver(opened, _delivery())
        typer.echo(delivered.summary())


@app.command("send")
@user_errors
def maintenance_send() -> None:
    """Deliver the work requests not delivered yet (outbox folder, POST to MES_CMMS_URL)."""
    with system_job() as opened:
        delivered = deliver(opened, _delivery())
    typer.echo(delivered.summary())


requests_app = typer.Typer(add_completion=False, invoke_without_command=True)
app.add_typer(requests_app, name="requests",
              help="Work requests to the CMMS; `requests import FILE`: their status back.")


@requests_app.callback()
@user_errors
def maintenance_requests(
    context: typer.Context,
    only_open: Annotated[bool, typer.Option(
        "--open", help="only requests not closed or cancelled")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="as a JSON list")] = False,
) -> None:
    """Work requests to the CMMS, the newest first."""
    if context.invoked_subcommand is not None:
        return
    with session() as opened:
        requests = list_requests(opened, only_open=only_open)
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in requests], indent=2))
        return
    for r in requests:
        sent = "sent" if r.sent_at else (f"unsent ({r.last_error})" if r.last_error
                                         else "unsent")
        typer.echo(f"{r.code:<10} {r.machine:<10} {r.cause:<16} {r.status:<12} P{r.priority} "
                   f"x{r.occurrences:<3} {r.last_event_at.isoformat()}  {sent}  "
                   f"{r.description}")
    if not requests:
        typer.echo("no work requests")


@requests_app.command("import")
@user_errors
def maintenance_requests_import(
    path: Annotated[Path, typer.Argument(
        help="status from the CMMS: .json (a list) or .csv with request (or external_id), "
             "status and optionally external_id")],
) -> None:
    """Import the CMMS's status of work requests (all or nothing; closed requests stop
    repeating)."""
    with acting_session() as (opened, _person):
        report = import_status_file(opened, path)
    typer.echo(f"{path}: {report.summary()}")
