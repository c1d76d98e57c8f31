"""Counters a running collector keeps about itself, and the status file that shows them.

`mes collect` rewrites the status file every second; `mes collect status` reads it. The
figures are plain counters and gauges; rates are worked out between two snapshots.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # `mes collect status` imports this module: it must stay light
    from ingest.conditioning import Reading


class ReportsSignals(Protocol):
    def latest_readings(self) -> Iterable[Reading]: ...


@dataclass
class Health:
    started_at: float = field(default_factory=time.time)
    samples_received: int = 0
    rows_written: int = 0
    samples_filtered: int = 0     # dropped on purpose: unchanged state, inside the deadband
    samples_dropped: int = 0      # lost: queue overflow, full spool, batch refused; keep at 0
    samples_refused: int = 0      # values that are no state code or counter reading
    rows_spooled: int = 0
    rows_recovered: int = 0       # replayed from the spool into the database
    queue_depth: int = 0          # readings waiting for the writer
    spool_bytes: int = 0
    spool_rows: int = 0
    last_flush_seconds: float | None = None
    last_flush_rows: int = 0
    database: str = "connecting"  # connecting (no answer yet) | connected | unreachable
    running: bool = True          # False once the collector has stopped and flushed
    sources: dict[str, str] = field(default_factory=dict)  # source name -> state
    counter_discontinuities: dict[str, int] = field(default_factory=dict)  # decision -> n
    unknown_states: dict[str, int] = field(default_factory=dict)  # "machine code" -> readings
    open_gaps: dict[str, str] = field(default_factory=dict)  # source -> cause
    # MQTT source -> its figures: messages, metrics, sequence_gaps, rebirths_requested,
    # stale (redelivered or older than a value already kept), rejected {reason: messages}
    mqtt: dict[str, dict[str, Any]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = time.time()
        data["pid"] = os.getpid()
        return data


def write_status(path: Path, health: Health, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Write the status file atomically, with per-second rates since `previous`."""
    current = health.snapshot()
    if previous is not None and current["at"] > previous["at"]:
        span = current["at"] - previous["at"]
        current["received_per_second"] = round(
            (current["samples_received"] - previous["samples_received"]) / span, 1)
        current["written_per_second"] = round(
            (current["rows_written"] - previous["rows_written"]) / span, 1)
        for name, figures in current["mqtt"].items():
            before = previous.get("mqtt", {}).get(name)
            if before is not None:
                figures["messages_per_second"] = round(
                    (figures["messages"] - before["messages"]) / span, 1)
                figures["metrics_per_second"] = round(
                    (figures["metrics"] - before["metrics"]) / span, 1)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(current, indent=1))
    temporary.replace(path)
    return current


def write_signals(path: Path, sources: Iterable[ReportsSignals]) -> None:
    """Write each signal's last reading (value, quality, time) atomically."""
    from ingest.conditioning import Quality

    signals: dict[str, dict[str, Any]] = {}
    for source in sources:
        for reading in source.latest_readings():
            signals[reading.binding.signal.code] = {
                "source": reading.binding.source, "address": reading.binding.address,
                "value": reading.value, "reason": reading.reason,
                "quality": Quality(reading.quality).name.lower(),
                "at": reading.ts.timestamp()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(signals, indent=0))
    temporary.replace(path)


def describe_signals(signals: dict[str, Any], now: float | None = None) -> str:
    """The signals table of `mes collect status --signals`."""
    now = time.time() if now is None else now
    lines = [f"  {'signal':<28} {'value':>14} {'quality':<18} {'last seen':<24} source"]
    for code, entry in sorted(signals.items()):
        value = entry.get("value")
        shown = "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        if entry.get("reason") is not None:
            shown += f" ({entry['reason']})"
        at = float(entry["at"])
        seen = (f"{dt.datetime.fromtimestamp(at, dt.UTC):%Y-%m-%d %H:%M:%S} "
                f"({max(0.0, now - at):.0f} s ago)")
        lines.append(f"  {code:<28} {shown:>14} {entry.get('quality', '?'):<18} {seen:<24} "
                     f"{entry.get('source', '')} {entry.get('address', '')}")
    if not signals:
        lines.append("  no readings yet")
    return "\n".join(lines)


def describe_status(data: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    age = now - float(data["at"])
    flush = data.get("last_flush_seconds")
    if not data.get("running", True):
        header = f"collector pid {data['pid']} stopped {age:.1f} s ago; its last figures:"
    else:
        header = (f"collector pid {data['pid']}, status written {age:.1f} s ago"
                  + ("  (STALE: is `mes collect` still running?)" if age > 5 else ""))
    lines = [
        header,
        f"  received {data.get('received_per_second', 0):>10} samples/s   "
        f"written {data.get('written_per_second', 0):>10} rows/s",
        f"  total received {data['samples_received']}, written {data['rows_written']}, "
        f"filtered {data['samples_filtered']}, refused {data.get('samples_refused', 0)}, "
        f"dropped {data['samples_dropped']}",
        f"  queue depth {data['queue_depth']}, spool {data['spool_rows']} rows "
        f"({data['spool_bytes']} bytes), recovered {data['rows_recovered']} rows",
        "  last flush " + (f"{flush * 1000:.1f} ms for {data['last_flush_rows']} rows"
                           if flush is not None else "none yet"),
        f"  database: {data['database']}",
    ]
    decisions = data.get("counter_discontinuities") or {}
    lines.append("  counter discontinuities: " + (", ".join(
        f"{count} {decision}" for decision, count in sorted(decisions.items())) or "none"))
    unknown = data.get("unknown_states") or {}
    lines.append("  unknown state codes: " + (", ".join(
        f"machine {key.replace(' ', ' code ')} ({count} readings)"
        for key, count in sorted(unknown.items())) or "none"))
    gaps = data.get("open_gaps") or {}
    lines.append("  open collection gaps: " + (", ".join(
        f"{source} ({cause.replace('_', ' ')})" for source, cause in sorted(gaps.items()))
        or "none"))
    lines += [f"  source {name}: {state}" for name, state in sorted(data["sources"].items())]
    for name, figures in sorted((data.get("mqtt") or {}).items()):
        rejected = figures.get("rejected") or {}
        lines.append(
            f"  mqtt {name}: {figures.get('messages_per_second', 0)} messages/s, "
            f"{figures.get('metrics_per_second', 0)} metrics/s; {figures['messages']} messages, "
            f"sequence gaps {figures['sequence_gaps']}, rebirths requested "
            f"{figures['rebirths_requested']}, stale {figures['stale']}, rejected "
            + (", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
               or "none"))
    started = dt.datetime.fromtimestamp(float(data["started_at"]), dt.UTC)
    lines.append(f"  running since {started:%Y-%m-%d %H:%M:%S} UTC")
    return "\n".join(lines)
