"""The `mes` console script. `mes collect status` is answered from the collector's files
without loading the rest of the command line (database drivers, models, the protocol
libraries); every other command goes to `mes.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:3] == ["collect", "status"]:
        import typer

        from mes.cli.collect_status import collect_status

        status = typer.Typer(add_completion=False)
        status.command()(collect_status)
        status(args=sys.argv[3:], prog_name="mes collect status")
        return
    from mes.cli import app

    app()
