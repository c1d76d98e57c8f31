"""Serving the app: `streamlit run dashboards/app.py` as a child process, and waiting until
it answers.

The child reads the same `MES_` settings as the `mes` command (it inherits the
environment), so it shows the database the command line works on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from transactional.errors import MesError

APP = Path(__file__).resolve().with_name("app.py")


class DashboardsError(MesError):
    """The app could not be served."""


def free_port(preferred: int, address: str = "127.0.0.1") -> int:
    """`preferred` if nothing listens there, else a port the system picks."""
    for candidate in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((address, candidate))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            return port
    raise DashboardsError(f"no free port on {address}")


def start(port: int, address: str = "127.0.0.1",
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start serving the app on `address:port`; the caller stops the process."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
         "--server.address", address, "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)


def wait_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> None:
    """Return once the app at `url` answers its health check; DashboardsError when the
    process ends first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise DashboardsError(f"the dashboards stopped at start (exit {process.returncode})"
                                  f": {error.strip()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise DashboardsError(f"the dashboards did not answer at {url} within {timeout:g} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop the app: SIGTERM, then SIGKILL if it has not ended after `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()
