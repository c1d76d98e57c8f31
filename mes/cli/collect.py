"""`mes collect`: run the collectors of a tag map, or check it, and `mes collect status`.

This module stays light: `mes collect status` reads only the collector's files and answers
in a fraction of a second (a monitoring probe's command), so the collector itself, with its
database driver and protocol libraries, is imported only when a collection or a check runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest.files import CollectorFiles
from ingest.health import describe_signals, describe_status
from mes.settings import get_settings

collect_app = typer.Typer(add_completion=False)


@collect_app.callback(invoke_without_command=True)
def collect(
    ctx: typer.Context,
    tag_map: Annotated[Path | None, typer.Option(
        "--tag-map", help="tag map (TOML): where each signal lives on the PLCs")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="spool, counter baselines and status file (default: MES_COLLECT_DIR "
                      "or .mes/collect)")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="read every node and register once, print what came back, store "
                        "nothing; exit 1 if any failed")] = False,
) -> None:
    """Run the collectors of a tag map until SIGTERM or Ctrl-C; `mes collect status` shows
    how they are doing."""
    if ctx.invoked_subcommand is not None:
        return
    # Imported here, not at the top: see the module's docstring.
    from mes.cli.collector import run_collector

    run_collector(tag_map, directory or get_settings().collect_path, check=check)


@collect_app.command("status")
def collect_status(
    directory: Annotated[Path | None, typer.Option("--dir", help="the collector's folder")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the raw status as JSON")] = False,
    signals: Annotated[bool, typer.Option(
        "--signals", help="also each signal's last value, quality and when it was seen")
    ] = False,
) -> None:
    """How the collector is doing: rates, queue, spool, flush latency, database, sources,
    counter discontinuities, unknown state codes, open collection gaps."""
    files = CollectorFiles(directory or get_settings().collect_path)
    if not files.status.exists():
        typer.secho(f"no status in {files.directory}: has `mes collect` run with this --dir?",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    data = json.loads(files.status.read_text())
    latest: dict[str, Any] = {}
    if signals:
        try:
            latest = json.loads(files.signals.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            latest = {}  # a collector that has not written it yet
    if as_json:
        typer.echo(json.dumps({**data, "signals": latest} if signals else data, indent=1))
        return
    typer.echo(describe_status(data))
    if signals:
        typer.echo(describe_signals(latest))
