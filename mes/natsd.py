"""A NATS server with JetStream on this machine, for the benchmarks and the tests.

Starts Debian's `nats-server` on loopback with its store in a folder of the caller's, and
stops it; a restart with the same folder keeps every stream. Production NATS is deployed
and configured by the plant's operators ([Deployment](../docs/deployment.md)).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from transactional.errors import MesError


class NatsServerError(MesError):
    """nats-server is missing or does not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalNats:
    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> LocalNats:
        binary = shutil.which("nats-server")
        if binary is None:
            raise NatsServerError("nats-server is not installed: `apt-get install nats-server` "
                                  "(./run installs it)")
        self.store.mkdir(parents=True, exist_ok=True)
        log = (self.store / "nats-server.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-js", "-sd", str(self.store), "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NatsServerError(f"nats-server exited ({self.process.returncode}); see "
                                      f"{self.store / 'nats-server.log'}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on port {self.port} within 15 s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # SIGTERM: the server flushes its streams and closes client connections.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
