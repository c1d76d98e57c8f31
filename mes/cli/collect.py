"""`mes collect` and `mes simulate`: machine data in over OPC UA and Modbus, and a line
simulator that serves it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from ingest.collect import CollectorFiles, run_until_signalled
from ingest.health import describe_status
from ingest.simulator.cli import simulate as run_simulator
from mes.cli.common import fail, sample_plant, user_errors
from mes.db import database_url
from mes.settings import get_settings

collect_app = typer.Typer(add_completion=False)
simulate_app = typer.Typer(add_completion=False)


def _collector_files(directory: Path | None) -> CollectorFiles:
    return CollectorFiles(directory or get_settings().collect_path)


@collect_app.callback(invoke_without_command=True)
@user_errors
def collect(
    ctx: typer.Context,
    tag_map: Annotated[Path | None, typer.Option(
        "--tag-map", help="tag map (TOML): where each signal lives on the PLCs")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="spool, counter baselines and status file (default: MES_COLLECT_DIR "
                      "or .mes/collect)")] = None,
) -> None:
    """Run the collectors of a tag map until SIGTERM or Ctrl-C; `mes collect status` shows
    how they are doing."""
    if ctx.invoked_subcommand is not None:
        return
    if tag_map is None:
        raise fail("give the tag map: mes collect --tag-map FILE")
    settings = get_settings()
    files = _collector_files(directory)
    asyncio.run(run_until_signalled(
        tag_map, database_url(settings), files, spool_max_bytes=settings.spool_max_bytes,
        flush_rows=settings.flush_rows, flush_seconds=settings.flush_interval_ms / 1000,
        role=settings.collect_role))


@collect_app.command("status")
@user_errors
def collect_status(
    directory: Annotated[Path | None, typer.Option("--dir", help="the collector's folder")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the raw status as JSON")] = False,
) -> None:
    """How the collector is doing: rates, queue, spool, flush latency, sources."""
    files = _collector_files(directory)
    if not files.status.exists():
        raise fail(f"no status in {files.directory}: has `mes collect` run with this --dir?")
    data = json.loads(files.status.read_text())
    typer.echo(json.dumps(data, indent=1) if as_json else describe_status(data))


@simulate_app.command("simulate")
@user_errors
def simulate(
    plant: Annotated[Path | None, typer.Option(
        help="plant file, .toml or .yaml (default: the sample plant)")] = None,
    opcua_port: Annotated[int, typer.Option(help="OPC UA port; 0 picks a free one")] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port; 0 picks a free one")] = 5020,
    seed: Annotated[int, typer.Option(help="the same seed plays the same day")] = 0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    word_order: Annotated[str, typer.Option(
        metavar="big|little", help="Modbus 32-bit values: high word first (big) or last")] = "big",
    counter_start: Annotated[int, typer.Option(
        help="part counters start here (near 4294967295 shows a rollover)")] = 0,
    tag_map_out: Annotated[Path | None, typer.Option(
        help="write the collector tag map for this simulator to this file")] = None,
    tag_map_protocol: Annotated[str, typer.Option(
        metavar="opcua|modbus|both", help="which protocol the tag map reads")] = "opcua",
) -> None:
    """Play the plant's machines over OPC UA and Modbus TCP until Ctrl+C."""
    try:
        run_simulator(plant or sample_plant(), opcua_port, modbus_port, seed, speed, word_order,
                      counter_start, tag_map_out, tag_map_protocol)
    except (ValueError, OSError) as error:
        raise fail(str(error)) from None
