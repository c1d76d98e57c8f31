"""`mes collect status`: how the running collector is doing, read from its files only.

Kept apart from `mes.cli.collect` so that it loads no database driver, ORM or protocol
library: `mes.launch` answers it without the rest of the command line, in a fraction of a
second, for a watch loop or a monitoring probe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ingest.files import CollectorFiles
from ingest.health import describe_signals, describe_status


def collect_status(
    directory: Annotated[Path | None, typer.Option("--dir", help="the collector's folder")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the raw status as JSON")] = False,
    signals: Annotated[bool, typer.Option(
        "--signals", help="also each signal's last value, quality and when it was seen")
    ] = False,
) -> None:
    """How the collector is doing: rates, queue, spool, flush latency, database, sources,
    counter discontinuities, unknown state codes, open collection gaps."""
    from mes.settings import get_settings

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
