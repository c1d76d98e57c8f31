"""The collector's folder and the errors that stop a collector, kept light on purpose.

`mes collect status` needs only these, and must answer without importing the protocol
libraries (asyncua alone takes about half a second to import). No I/O happens here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class CollectError(RuntimeError):
    """The collector cannot start; the message says why and what to do."""


class TagMapError(ValueError):
    """A tag map the collector refuses to start with; lists every problem found."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{self.path}: tag map rejected, the collector did not start:\n{lines}")


@dataclass(frozen=True)
class CollectorFiles:
    """The collector's folder: spool, counter baselines, signal map copy, status."""

    directory: Path

    @property
    def spool(self) -> Path:
        return self.directory / "spool"

    @property
    def carry_over(self) -> Path:
        return self.directory / "carry_over.json"

    @property
    def signal_map(self) -> Path:
        return self.directory / "signal_map.json"

    @property
    def status(self) -> Path:
        return self.directory / "status.json"

    @property
    def signals(self) -> Path:
        """Per signal: the last value received and when (`mes collect status --signals`)."""
        return self.directory / "signals.json"

    @property
    def run_marker(self) -> Path:
        """Exists while a collector runs: found at a start, the last run crashed."""
        return self.directory / "running.pid"

    @property
    def progress(self) -> Path:
        """Per source, the last data durably stored; when the last run stopped."""
        return self.directory / "progress.json"
