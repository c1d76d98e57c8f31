"""`mes maintenance`: maintenance windows from the CMMS, which dispatching honours."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from mes.cli.common import acting_session, session, user_errors
from transactional.maintenance import import_window_file, list_windows

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
