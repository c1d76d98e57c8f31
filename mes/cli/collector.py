"""What `mes collect` runs: the collectors of a tag map, or a one-off check of it.

Imported only when one of them runs (see `mes.cli.collect`): it loads the database driver
and the OPC UA and Modbus libraries.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from ingest.collect import CollectorFiles, check_tag_map_file, run_until_signalled
from mes.cli.common import fail, user_errors
from mes.db import database_url
from mes.settings import get_settings


@user_errors
def run_collector(tag_map: Path | None, directory: Path, *, check: bool) -> None:
    """Collect until SIGTERM or Ctrl-C, or (check) read every node and register once."""
    if tag_map is None:
        raise fail("give the tag map: mes collect --tag-map FILE")
    settings = get_settings()
    files = CollectorFiles(directory)
    if check:
        table, all_good = check_tag_map_file(tag_map, database_url(settings), files,
                                             settings.collect_role)
        typer.echo(table)
        if not all_good:
            raise typer.Exit(code=1)
        return
    asyncio.run(run_until_signalled(
        tag_map, database_url(settings), files, spool_max_bytes=settings.spool_max_bytes,
        flush_rows=settings.flush_rows, flush_seconds=settings.flush_interval_ms / 1000,
        role=settings.collect_role))
