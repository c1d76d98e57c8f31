"""`mes dashboards`: serve the Streamlit app until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from dashboards.server import start, stop, wait_ready
from mes.cli.common import user_errors

app = typer.Typer(add_completion=False)


@app.command("dashboards")
@user_errors
def dashboards(
    port: Annotated[int, typer.Option(help="port to serve on")] = 8501,
    address: Annotated[str, typer.Option(
        help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
) -> None:
    """Serve the dashboards: supervisor board, analysts' pages, operator station."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    process = start(port, address)
    try:
        url = f"http://{address}:{port}"
        wait_ready(process, url)
        typer.echo(f"dashboards at {url} (Ctrl-C stops them)")
        while not stopping.wait(0.5):
            if process.poll() is not None:
                raise typer.Exit(code=process.returncode or 1)
    finally:
        stop(process)
