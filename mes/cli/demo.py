"""`mes demo`: the whole project on the sample plant, until Ctrl-C or for a few seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from dashboards.server import free_port, wait_ready
from dashboards.server import start as start_dashboards
from dashboards.server import stop as stop_dashboards
from mes.cli.common import hidden, user_errors
from mes.cli.db import bring_up, db_status, password_hint
from mes.demo import PRESS_OPERATOR, SAMPLE_PLANT, collect, first_data
from mes.settings import get_settings
from transactional.plant_file import MachineDef, read_plant_file

app = typer.Typer(add_completion=False)

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
    """Set up the database, load the sample plant and a morning's work, run the line
    simulator and both collectors, derive the KPIs and serve the dashboards: until Ctrl-C,
    or for --seconds."""
    url = bring_up()
    address = "127.0.0.1"
    port = free_port(port, address)
    # The dashboards start while the data is made: Streamlit takes a few seconds.
    dashboards = start_dashboards(port, address)
    try:
        if first_data(FIRST_SECONDS if seconds is None else seconds, typer.echo):
            _kpi_table(read_plant_file(SAMPLE_PLANT).machines)
        db_status()
        site = f"http://{address}:{port}"
        wait_ready(dashboards, site)
        typer.echo(f"\ndashboards at {site} (the shift board; the operator station logs in "
                   f"with a badge and password: `.venv/bin/mes user set-password "
                   f"{PRESS_OPERATOR}` gives Ana Lopez one)")
        typer.echo("Dagster: eval \"$(.venv/bin/mes pipelines env)\" && "
                   ".venv/bin/dagster dev -m pipelines.definitions  (http://127.0.0.1:3000)")
        _where_next(url)
        if seconds is None:
            typer.echo("\ncollecting live until Ctrl-C")
            collect(UNTIL_STOPPED, typer.echo)
    except KeyboardInterrupt:
        # Ctrl-C is how this demo ends: the collectors have written what they held.
        typer.echo("\nstopping")
    finally:
        stop_dashboards(dashboards)


def _where_next(url: str) -> None:
    typer.echo(
        "\nWhere to look next:\n"
        f"  psql '{hidden(url)}'{password_hint()}\n"
        "  tables: mes.equipment, mes.signal, mes.shift, mes.downtime_reason; hypertables in ts\n"
        "  .venv/bin/mes simulate --tag-map-out tags.toml   (serves the plant until Ctrl-C)\n"
        "  .venv/bin/mes collect --tag-map tags.toml        (collects it; "
        "`mes collect status` shows how)\n"
        "  .venv/bin/mes dispatch --work-center L1 | .venv/bin/mes trace RAW-4711-1\n"
        "  .venv/bin/mes user set-password 4001 && .venv/bin/mes login 4001 && "
        ".venv/bin/mes order release 4713\n"
        "  .venv/bin/mes audit verify\n"
        "  .venv/bin/mes db status | .venv/bin/mes db retention --older-than 90d --dry-run\n"
        "  .venv/bin/mes db down   (stops the local database)"
    )


def _kpi_table(machines: Sequence[MachineDef]) -> None:
    """Each machine's day as just derived."""
    from mes.cli.pipelines import kpi_table

    typer.echo("today's KPIs (ISO 22400-2; time before the demo collected is unknown, so "
               "availability is low):")
    typer.echo(f"{'machine':<10} {'busy h':>7} {'run s':>7} {'made':>6} {'good':>6} "
               f"{'A':>7} {'P':>7} {'Q':>7} {'OEE':>7}")

    def pct(value: object) -> str:
        return "-" if not isinstance(value, float) else f"{value * 100:.1f}%"

    today = dt.datetime.now(ZoneInfo(get_settings().pipeline_timezone)).date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    for machine in machines:
        for row in kpi_table(machine.code, today.isoformat(), tomorrow, "day"):
            typer.echo(f"{machine.code:<10} {row['planned_busy_seconds'] / 3600:>7.2f} "
                       f"{row['actual_production_seconds']:>7.0f} "
                       f"{row['produced_quantity']:>6} {row['good_quantity']:>6} "
                       f"{pct(row['availability']):>7} {pct(row['performance']):>7} "
                       f"{pct(row['quality']):>7} {pct(row['oee']):>7}")
