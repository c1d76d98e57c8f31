"""The collector's folder: where its spool, baselines, status and run record are kept.

Kept light on purpose: `mes collect status` needs only this, and must answer without
importing the protocol libraries (asyncua alone takes about half a second). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    def sparkplug_births(self) -> Path:
        """The aliases of each Sparkplug B node's latest births, for messages queued meanwhile."""
        return self.directory / "sparkplug_births.json"

    @property
    def rejected_messages(self) -> Path:
        """MQTT messages set aside whole (JSON lines: topic, reason, payload)."""
        return self.directory / "rejected_messages.jsonl"

    @property
    def run_marker(self) -> Path:
        """Exists while a collector runs: found at a start, the last run crashed."""
        return self.directory / "running.pid"

    @property
    def progress(self) -> Path:
        """Per source, the last data durably stored; when the last run stopped."""
        return self.directory / "progress.json"
