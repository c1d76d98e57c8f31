"""`mes opcua browse`: what an OPC UA server offers, to write a tag map from."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from asyncua.ua.uaerrors import UaError

from ingest.browse import browse, render_table, tag_map_stub
from mes.cli.common import fail

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("browse")
def opcua_browse(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://host:port[/path]")],
    depth: Annotated[int, typer.Option(min=1, max=20,
                                       help="levels below the Objects folder")] = 4,
    stub: Annotated[bool, typer.Option(
        "--tag-map-stub", help="print a starting tag map instead of the table")] = False,
    name: Annotated[str, typer.Option(help="the source's name in the stub")] = "plc",
) -> None:
    """List the server's variables: node id (with the namespace index it uses), browse
    path, data type and current value."""
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)  # one message, no tracebacks
    try:
        variables = asyncio.run(browse(endpoint, depth))
    except (OSError, TimeoutError, UaError) as error:
        raise fail(f"cannot browse {endpoint}: {error or type(error).__name__}") from None
    typer.echo(tag_map_stub(endpoint, variables, name) if stub else render_table(variables))
