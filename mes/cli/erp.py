"""`mes erp`: the exchange with ERP (production orders in, actuals out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mes.cli.common import acting_session, fail, moment, user_errors
from transactional.erp_export import acknowledge, export_actuals, read_ack_file
from transactional.erp_import import import_orders

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("import")
@user_errors
def erp_import(
    path: Annotated[Path, typer.Argument(
        help="orders: .xml (B2MML OperationsSchedule), .csv or .json")],
) -> None:
    """Import production orders from ERP (all or nothing; the same file again changes
    nothing; orders already started are not changed)."""
    with acting_session() as (opened, _person):
        report = import_orders(opened, path)
    typer.echo(f"{path}: {report.summary()}")
    for label, codes in (("created", report.created), ("updated", report.updated)):
        if codes:
            typer.echo(f"  {label}: {', '.join(codes)}")


@app.command("export")
@user_errors
def erp_export(
    out: Annotated[Path | None, typer.Option(
        help="the B2MML file (.xml); the .csv and .parquet are written beside it")] = None,
    since: Annotated[str | None, typer.Option(
        help="only operations with activity since this time (ISO 8601 with a zone)")] = None,
    all_records: Annotated[bool, typer.Option(
        "--all", help="also records already sent unchanged (as 'repeat')")] = False,
    ack: Annotated[Path | None, typer.Option(
        help="ERP's confirmations (.csv with order_id, operation, digest, or .json) to mark "
             "as acknowledged")] = None,
) -> None:
    """Export production actuals to ERP (B2MML OperationsPerformance, CSV, Parquet):
    only what ERP has not received yet, corrections as changes; or mark what ERP confirmed."""
    if out is None and ack is None:
        raise fail("give --out FILE.xml to export, or --ack FILE to mark confirmations")
    if ack is not None:
        acks = read_ack_file(ack)
        with acting_session() as (session, _person):
            report = acknowledge(session, acks)
        typer.echo(f"{ack}: {report.summary()}")
    if out is not None:
        with acting_session() as (session, _person):
            export, paths = export_actuals(session, out, moment("--since", since), all_records)
        typer.echo(export.summary())
        for path in paths:
            typer.echo(f"  wrote {path}")
