"""`mes demo`: the whole project on the sample plant in a few seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from dashboards.server import free_port, wait_ready
from dashboards.server import start as start_dashboards
from dashboards.server import stop as stop_dashboards
from mes.cli.common import administration, hidden, sample_plant, user_errors
from mes.cli.db import bring_up, db_status, password_hint
from mes.cli.plant import load_plant_file
from mes.db import database_url
from mes.demo import live_demo
from mes.settings import get_settings
from transactional.erp_import import import_orders
from transactional.maintenance import import_window_file
from transactional.plant_file import MachineDef, read_plant_file
from transactional.products import load_products, read_products_file

app = typer.Typer(add_completion=False)


def _demo_orders() -> None:
    """The sample products, three orders from an ERP file (B2MML) and a CMMS's maintenance
    windows, each all or nothing and idempotent like their commands."""
    samples = sample_plant().parent
    products = read_products_file(samples / "products.toml")
    with administration() as (session, _person):
        loaded = load_products(session, products, source="sample products")
        orders = import_orders(session, samples / "orders.xml")
        windows = import_window_file(session, samples / "maintenance.json")
    typer.echo("sample products: " + ("loaded" if loaded.changed else "already loaded"))
    typer.echo(f"sample ERP orders (B2MML) {samples / 'orders.xml'}: {orders.summary()}")
    typer.echo(f"sample maintenance windows: {windows.summary()}")


# Collected before the KPIs are derived when the demo runs until Ctrl-C.
FIRST_SECONDS = 10.0
# Long enough to mean "until Ctrl-C" for asyncio.sleep.
UNTIL_STOPPED = 10.0 ** 9


@app.command("demo")
@user_errors
def demo(
    seconds: Annotated[float | None, typer.Option(
        min=0, help="run the simulator and the collectors this long, then stop everything "
                    "(0: not at all); without it the demo runs until Ctrl-C")] = None,
    port: Annotated[int, typer.Option(
        help="port of the dashboards (another free one if it is taken)")] = 8501,
) -> None:
    """Set up the database, load the sample plant, run the line simulator and both
    collectors, derive the KPIs and serve the dashboards: until Ctrl-C, or for --seconds."""
    url = bring_up()
    path = sample_plant()
    report = load_plant_file(path)
    typer.echo(f"sample plant {path}: " + ("loaded" if report.changed else "already loaded"))
    _demo_orders()
    db_status()
    address = "127.0.0.1"
    port = free_port(port, address)
    # The dashboards start while the collectors run: Streamlit takes a few seconds.
    dashboards = start_dashboards(port, address)
    try:
        first = FIRST_SECONDS if seconds is None else seconds
        if first > 0:
            typer.echo("")
            _collect(path, first)
            _demo_kpis(read_plant_file(path).machines)
        site = f"http://{address}:{port}"
        wait_ready(dashboards, site)
        typer.echo(f"\ndashboards at {site} (the shift board; the operator station logs in "
                   "with a badge and password)")
        typer.echo("Dagster: eval \"$(.venv/bin/mes pipelines env)\" && "
                   ".venv/bin/dagster dev -m pipelines.definitions  (http://127.0.0.1:3000)")
        _where_next(url)
        if seconds is None:
            typer.echo("\ncollecting live until Ctrl-C")
            try:
                _collect(path, UNTIL_STOPPED)
            except KeyboardInterrupt:
                typer.echo("stopping")
    finally:
        stop_dashboards(dashboards)


def _collect(path: Path, seconds: float) -> None:
    asyncio.run(live_demo(read_plant_file(path), database_url(get_settings()),
                          get_settings().collect_path / "demo", seconds, typer.echo,
                          role=get_settings().collect_role))


def _where_next(url: str) -> None:
    typer.echo(
        "\nWhere to look next:\n"
        f"  psql '{hidden(url)}'{password_hint()}\n"
        "  tables: mes.equipment, mes.signal, mes.shift, mes.downtime_reason; hypertables in ts\n"
        "  .venv/bin/mes simulate --tag-map-out tags.toml   (serves the plant until Ctrl-C)\n"
        "  .venv/bin/mes collect --tag-map tags.toml        (collects it; "
        "`mes collect status` shows how)\n"
        "  .venv/bin/mes order release 4711 --by 3001 && .venv/bin/mes dispatch "
        "--work-center L1\n"
        "  .venv/bin/mes audit verify | .venv/bin/mes trace LOT\n"
        "  .venv/bin/mes db status | .venv/bin/mes db retention --older-than 90d --dry-run\n"
        "  .venv/bin/mes db down   (stops the local database)"
    )


def _demo_kpis(machines: Sequence[MachineDef]) -> None:
    """Derive today's partition from what was just collected and show each machine's day."""
    from mes.cli.pipelines import kpi_table
    from pipelines.materialize import derive_days

    zone = ZoneInfo(get_settings().pipeline_timezone)
    today = dt.datetime.now(zone).date()
    for result in derive_days(database_url(get_settings()), today, today):
        where = f" {result.site}" if result.site else ""
        typer.echo(f"\nderived {today}{where}: " + ", ".join(f"{n} {asset}" for asset, n in
                                                            result.rows.items())
                   + ("" if not result.failed_checks else
                      "; checks failed: " + ", ".join(result.failed_checks)))
    typer.echo("today's KPIs (ISO 22400-2; time before the demo collected is unknown, so "
               "availability is low):")
    typer.echo(f"{'machine':<10} {'busy h':>7} {'run s':>7} {'made':>6} {'good':>6} "
               f"{'A':>7} {'P':>7} {'Q':>7} {'OEE':>7}")

    def pct(value: object) -> str:
        return "-" if not isinstance(value, float) else f"{value * 100:.1f}%"

    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    for machine in machines:
        for row in kpi_table(machine.code, today.isoformat(), tomorrow, "day"):
            typer.echo(f"{machine.code:<10} {row['planned_busy_seconds'] / 3600:>7.2f} "
                       f"{row['actual_production_seconds']:>7.0f} "
                       f"{row['produced_quantity']:>6} {row['good_quantity']:>6} "
                       f"{pct(row['availability']):>7} {pct(row['performance']):>7} "
                       f"{pct(row['quality']):>7} {pct(row['oee']):>7}")
