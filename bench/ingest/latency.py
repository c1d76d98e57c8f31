"""End-to-end latency: a value changes at the simulator, and the bench sees its row.

The simulator host writes changes at a fixed rate, each stamped with the moment it is
made (its OPC UA source timestamp, which becomes the row's `ts`); the collector host
stores them; this side polls the database and takes, for each new row, the time it was
first seen minus its `ts`. Both processes run on this machine: one clock.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from bench.ingest.hosts import Child
from bench.ingest.scratch import BenchError

LATENCY_TARGET_P99_MS = 250.0
_POLL_SECONDS = 0.005
_DRAIN_SECONDS = 5.0
_ANSWER_SECONDS = 60.0

# The only index of ts.process_value leads with signal_id: one range scan per signal from
# the last row seen of it keeps each poll cheap. Rows of one signal become visible in time
# order (one source, one writer), so nothing is missed below a signal's last row.
_NEW_ROWS = """
SELECT p.signal_id, p.ts
FROM unnest(%s::int4[], %s::timestamptz[]) AS seen(signal_id, last_ts)
CROSS JOIN LATERAL (
    SELECT signal_id, ts FROM ts.process_value v
    WHERE v.signal_id = seen.signal_id AND v.ts > seen.last_ts
) AS p
"""


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of values sorted ascending."""
    if not sorted_values:
        raise BenchError("no latency was measured")
    rank = max(1, min(len(sorted_values), math.ceil(share * len(sorted_values))))
    return sorted_values[rank - 1]


def measure_rate(url: str, simulator: Child, signal_ids: dict[str, int], rate: int,
                 seconds: float, discard_seconds: float) -> dict[str, Any]:
    codes = list(signal_ids)
    ids = [signal_ids[code] for code in codes]
    latencies: list[tuple[float, float]] = []  # (ts as epoch seconds, latency)
    with psycopg.connect(url, autocommit=True) as conn:
        baseline = dt.datetime.now(dt.UTC)
        last = {signal_id: baseline for signal_id in ids}
        simulator.send("drive", codes=codes, rate=rate, seconds=seconds)
        driven: dict[str, Any] | None = None
        drain_until = float("inf")
        next_poll = time.monotonic()
        give_up = next_poll + seconds + _ANSWER_SECONDS
        while True:
            rows = conn.execute(_NEW_ROWS, (ids, [last[i] for i in ids])).fetchall()
            seen_at = time.time()
            for signal_id, ts in rows:
                stamp = ts.timestamp()
                latencies.append((stamp, seen_at - stamp))
                if ts > last[signal_id]:
                    last[signal_id] = ts
            if driven is None and simulator.poll():
                driven = simulator.receive(5)
                drain_until = time.monotonic() + _DRAIN_SECONDS
            elif driven is None and time.monotonic() > give_up:
                raise BenchError(f"the simulator did not finish driving {rate}/s for "
                                 f"{seconds:g} s within {seconds + _ANSWER_SECONDS:g} s")
            if driven is not None and (len(latencies) >= driven["written"]
                                       or time.monotonic() > drain_until):
                break
            next_poll += _POLL_SECONDS
            pause = next_poll - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_poll = time.monotonic()
    started = float(driven["started_at"])
    measured = sorted(latency for stamp, latency in latencies
                      if stamp >= started + discard_seconds)
    early = [stamp for stamp, _ in latencies if stamp < started]
    if early:
        raise BenchError(f"{len(early)} rows older than the drive showed up: another writer "
                         "is using the bench database?")
    return {
        "rate_per_second": rate,
        "driven_per_second": round(driven["per_second"], 1),
        "seconds": round(driven["seconds"], 2),
        "written": driven["written"],
        "seen": len(latencies),
        "lost": driven["written"] - len(latencies),
        "measured": len(measured),
        "discarded_seconds": discard_seconds,
        "p50_ms": round(percentile(measured, 0.50) * 1000, 1),
        "p90_ms": round(percentile(measured, 0.90) * 1000, 1),
        "p99_ms": round(percentile(measured, 0.99) * 1000, 1),
        "max_ms": round(measured[-1] * 1000, 1),
        "driver_late_max_ms": round(driven["late_max_ms"], 1),
    }
