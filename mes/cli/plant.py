"""`mes plant` and `mes products`: load the plant model and the product definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mes.cli.common import administration, user_errors
from transactional.plant import LoadReport, load_plant
from transactional.plant_file import read_plant_file
from transactional.products import load_products, read_products_file

plant_app = typer.Typer(no_args_is_help=True, add_completion=False)
products_app = typer.Typer(no_args_is_help=True, add_completion=False)


def load_plant_file(path: Path) -> LoadReport:
    """Read a plant file and load it in one transaction."""
    plant = read_plant_file(path)
    with administration() as (session, _person):
        return load_plant(session, plant, source=str(path))


@plant_app.command("load")
@user_errors
def plant_load(path: Annotated[Path, typer.Argument(help="plant file, .toml or .yaml")]) -> None:
    """Load a plant definition (all or nothing; loading it again changes nothing)."""
    report = load_plant_file(path)
    typer.echo(f"{path}: " + ("loaded" if report.changed else "already up to date"))
    typer.echo(report.summary())


@products_app.command("load")
@user_errors
def products_load(
    path: Annotated[Path, typer.Argument(help="products file, .toml")],
) -> None:
    """Load product definitions (all or nothing; loading them again changes nothing)."""
    products = read_products_file(path)
    with administration() as (session, _person):
        report = load_products(session, products, source=str(path))
    typer.echo(f"{path}: " + ("loaded" if report.changed else "already up to date"))
    typer.echo(report.summary())
