"""`mes erp`: the exchange with ERP (production orders in)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mes.cli.common import acting_session, user_errors
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
