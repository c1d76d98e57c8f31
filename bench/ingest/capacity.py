"""Capacity of one collector process: OPC UA notifications, Modbus reads, simulator speed.

Each run offers a load from the simulator host and reads what the collector host received
and stored from its Health counters (and, for speeds, from the database). A step keeps up
when the collector is no more than a moment behind at its end, and nothing is lost.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg

from bench.ingest.hosts import Child

OPCUA_TARGET_PER_SECOND = 10_000
# One publishing interval and one flush: what may still be in flight when a step ends.
_GRACE_SECONDS = 0.25
# A step keeps up when this share of what was offered is through when the grace is over.
_KEEPING_UP = 0.97
_SETTLE_SECONDS = 10.0


def _settled(collector: Child, expected_received: int) -> dict[str, Any]:
    """Health once everything received is stored (or the settle time is over)."""
    deadline = time.monotonic() + _SETTLE_SECONDS
    previous: dict[str, Any] | None = None
    while True:
        health: dict[str, Any] = collector.call("health")
        done = (health["samples_received"] >= expected_received
                and health["queue_depth"] == 0
                and previous is not None
                and previous["rows_written"] == health["rows_written"]
                and previous["samples_received"] == health["samples_received"])
        if done or time.monotonic() > deadline:
            return health
        previous = health
        time.sleep(0.1)


def _delta(after: dict[str, Any], before: dict[str, Any], key: str) -> int:
    return int(after[key]) - int(before[key])


def _cpu_percent(after: dict[str, Any], before: dict[str, Any]) -> float:
    """The collector process's CPU between two health figures, in percent of one core."""
    wall = float(after["monotonic"]) - float(before["monotonic"])
    cpu = float(after["cpu_seconds"]) - float(before["cpu_seconds"])
    return round(100 * cpu / wall, 1) if wall > 0 else 0.0


def opcua_notifications(simulator: Child, collector: Child, codes: list[str],
                        rates: list[int | None], seconds: float) -> dict[str, Any]:
    """Notifications per second one collector takes, at rising offered rates."""
    steps: list[dict[str, Any]] = []
    _settled(collector, 0)  # the subscription's first values are through
    for rate in rates:
        before = collector.call("health")
        driven = simulator.call("drive", timeout=seconds + 60, codes=codes, rate=rate,
                                seconds=seconds)
        time.sleep(_GRACE_SECONDS)
        at_end = collector.call("health")
        written = int(driven["written"])
        settled = _settled(collector, int(before["samples_received"]) + written)
        span = float(driven["seconds"])
        received = _delta(at_end, before, "samples_received")
        stored = _delta(at_end, before, "rows_written")
        lost = written - _delta(settled, before, "samples_received")
        dropped = _delta(settled, before, "samples_dropped")
        step = {
            "offered_rate": rate,  # None: as fast as the simulator can write
            "written": written,
            "written_per_second": round(written / span, 1),
            "received_per_second": round(received / span, 1),
            "stored_per_second": round(stored / span, 1),
            "lost": lost,
            "dropped": dropped,
            "collector_cpu_percent": _cpu_percent(at_end, before),
            "simulator_cpu_percent": round(100 * float(driven["cpu_seconds"]) / span, 1),
            "simulator_kept_pace": rate is None or written >= 0.95 * rate * seconds,
            "keeps_up": (received >= _KEEPING_UP * written and stored >= _KEEPING_UP * written
                         and lost <= 0 and dropped == 0),
        }
        steps.append(step)
        if not step["keeps_up"]:
            break
    kept = [s for s in steps if s["keeps_up"]]
    failed = next((s for s in steps if not s["keeps_up"]), None)
    busiest = max(kept, key=lambda s: s["received_per_second"], default=None)
    # What one fully used core would take at the cost per notification measured at the
    # busiest step that kept up: an estimate when the simulator cannot offer more.
    per_core = (round(100 * busiest["received_per_second"] / busiest["collector_cpu_percent"])
                if busiest is not None and busiest["collector_cpu_percent"] >= 5 else None)
    if failed is not None:
        limited_by = "collector"
    elif not steps[-1]["simulator_kept_pace"] or steps[-1]["offered_rate"] is None:
        limited_by = "simulator"
    else:
        limited_by = "highest rate tried"
    return {
        "nodes": len(codes),
        "step_seconds": seconds,
        "steps": steps,
        "sustained_per_second": 0.0 if busiest is None else busiest["received_per_second"],
        "collector_cpu_percent_at_sustained": (None if busiest is None
                                               else busiest["collector_cpu_percent"]),
        "per_core_estimate": per_core,
        "stops_keeping_up_at": None if failed is None else failed["written_per_second"],
        "limited_by": limited_by,
        "target_per_second": OPCUA_TARGET_PER_SECOND,
    }


def modbus_reads(collector: Child, devices: int, poll_interval_ms: int,
                 seconds: float) -> dict[str, Any]:
    """Requests and registers per second one collector reads, every device polled flat out."""
    before = collector.call("health")
    started = time.monotonic()
    time.sleep(seconds)
    after = collector.call("health")
    span = time.monotonic() - started
    requests = _delta(after, before, "modbus_requests")
    return {
        "devices": devices,
        "poll_interval_ms": poll_interval_ms,
        "seconds": round(span, 2),
        "requests_per_second": round(requests / span, 1),
        "registers_per_second": round(
            (float(after["modbus_registers"]) - float(before["modbus_registers"])) / span, 1),
        "polls_per_second": round(_delta(after, before, "modbus_polls") / span, 1),
        "rows_written_per_second": round(_delta(after, before, "rows_written") / span, 1),
        "asked_requests_per_second": round(devices * 1000 / poll_interval_ms, 1),
        "dropped": _delta(after, before, "samples_dropped"),
    }


def _stored_between(url: str, signal_ids: list[int], first: float, last: float) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM ts.process_value WHERE signal_id = ANY(%s) "
            "AND ts >= to_timestamp(%s) AND ts <= to_timestamp(%s)",
            (signal_ids, first, last)).fetchone()
    return int(row[0]) if row else 0


def simulator_speeds(url: str, simulator: Child, collector: Child, signal_ids: list[int],
                     speeds: list[float], seconds: float, tick_seconds: float,
                     ) -> dict[str, Any]:
    """The fastest simulator speed whose whole plant one collector stores as it happens."""
    steps: list[dict[str, Any]] = []
    for speed in speeds:
        before = collector.call("health")
        played = simulator.call("play", timeout=seconds + 60, speed=speed, seconds=seconds)
        time.sleep(_GRACE_SECONDS)
        first, last = float(played["started_at"]), float(played["ended_at"])
        served = int(played["served_process_values"])
        stored_in_time = _stored_between(url, signal_ids, first, last)
        at_end = collector.call("health")
        after = _settled(collector, 0)
        stored = _stored_between(url, signal_ids, first, last)
        span = last - first
        step = {
            "speed": speed,
            "ticks": played["ticks"],
            "ticks_due": played["ticks_due"],
            "simulator_kept_pace": played["ticks"] >= 0.95 * played["ticks_due"],
            "served_process_values": served,
            "served_per_second": round(int(played["served"]) / span, 1),
            "stored_process_values": stored,
            "stored_in_time": stored_in_time,
            "dropped": _delta(after, before, "samples_dropped"),
            "queue_depth_after": after["queue_depth"],
            "collector_cpu_percent": _cpu_percent(at_end, before),
            "simulator_cpu_percent": round(100 * float(played["cpu_seconds"]) / span, 1),
        }
        step["keeps_up"] = (stored == served and stored_in_time >= _KEEPING_UP * served
                            and step["dropped"] == 0)
        steps.append(step)
        if not (step["keeps_up"] and step["simulator_kept_pace"]):
            break
    kept = [s["speed"] for s in steps if s["keeps_up"] and s["simulator_kept_pace"]]
    final = steps[-1]
    if not final["keeps_up"]:
        limited_by = "collector"
    elif not final["simulator_kept_pace"]:
        limited_by = "simulator"
    else:
        limited_by = "highest speed tried"
    return {
        "tick_seconds": tick_seconds,
        "step_seconds": seconds,
        "steps": steps,
        "max_speed_kept_up": max(kept, default=None),
        "limited_by": limited_by,
    }
