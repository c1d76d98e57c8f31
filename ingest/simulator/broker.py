"""A local mosquitto broker for the simulator, tests and benchmarks, on a loopback port.

It writes the broker configuration the documentation recommends (persistence, queues long
enough that a QoS 1 message the broker acknowledged is never dropped for a slow or absent
subscriber) into a folder of its own, and starts, stops and restarts the broker there.
It runs Debian's `mosquitto`; it does not install it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self


def broker_config(port: int, persistence_dir: Path, host: str = "127.0.0.1",
                  user: str | None = None) -> str:
    """mosquitto.conf for collecting with QoS 1 and persistent sessions."""
    # Started as root, mosquitto becomes the user `mosquitto`, who cannot write to a folder
    # of root's: a local broker then keeps root.
    return "\n".join(([f"user {user}"] if user else []) + [
        f"listener {port} {host}",
        "allow_anonymous true",
        # Sessions and their queued messages survive a broker restart.
        "persistence true",
        f"persistence_location {persistence_dir}/",
        "autosave_interval 60",
        # The defaults (1,000 queued messages per client) drop acknowledged QoS 1 messages
        # while a subscriber is away or slow: queue without a message limit, by bytes.
        "max_queued_messages 0",
        "max_queued_bytes 1073741824",
        # In flight to one client: the client's Receive Maximum decides (MQTT 5).
        "max_inflight_messages 0",
        "persistent_client_expiration 7d",
        "set_tcp_nodelay true",
        "log_type error",
        "log_type warning",
        "",
    ])


def mosquitto_path() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None)
    if found is None:
        raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class LocalBroker:
    """`with LocalBroker(folder) as broker:` a mosquitto on `broker.port` until the block ends."""

    def __init__(self, directory: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            raise RuntimeError("the broker is already running")
        persistence = self.directory / "persistence"
        persistence.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(broker_config(
            self.port, persistence, self.host, "root" if os.geteuid() == 0 else None))
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [mosquitto_path(), "-c", str(self.config_path)], stdout=log, stderr=log,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}; "
                                       f"see {self.log_path}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cleanly (SIGTERM: the broker saves its sessions and queues first)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
