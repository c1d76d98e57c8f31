"""`mes bench trace`: genealogy traces timed over a synthetic history of many lots.

Makes a scratch database on the local cluster (migrated like any other), loads the sample
plant and a synthetic history into it, times the real `transactional.genealogy.trace`
backward from random pallets and forward from random coils, and drops the database
whatever happens. It measures; it changes nothing outside its scratch database.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from bench.scratch import running_local_cluster, scratch_database
from bench.trace.history import (
    FINISHED,
    RAW,
    STAGES,
    History,
    add_reference,
    copy_history,
    make_shape,
)
from mes.db import session_factory
from transactional.audit import acting
from transactional.errors import MesError
from transactional.genealogy import Direction, trace
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

Progress = Callable[[str], None]
TARGET_P95_MS = 50.0
TARGET_LEVELS = 6
WARMUP_TRACES = 20
BULK_LOAD = ("COPY as the superuser with session_replication_role = replica: audit and "
             "lot-movement triggers off for the load only (lot quantities written as the sum "
             "of their movements; the audit log holds none of these rows)")
OUT_OF_BALANCE = """
SELECT count(*) FROM mes.material_lot l
LEFT JOIN (SELECT lot_id, sum(quantity) AS moved FROM mes.lot_movement GROUP BY lot_id) m
    ON m.lot_id = l.id
WHERE l.quantity <> coalesce(m.moved, 0)
"""


class TraceBenchError(MesError):
    """The trace bench cannot run; the message says why and what to do."""


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of them at or
    below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _time_traces(url: str, codes: Sequence[str], direction: Direction) -> dict[str, Any]:
    millis: list[float] = []
    lots: list[int] = []
    links: list[int] = []
    levels: list[int] = []
    with session_factory(url)() as session:
        for code in codes[:WARMUP_TRACES]:
            trace(session, code, (direction,))
            session.rollback()
        for code in codes[WARMUP_TRACES:]:
            started = time.perf_counter()
            found = trace(session, code, (direction,))
            millis.append((time.perf_counter() - started) * 1000)
            session.rollback()
            lots.append(len(found.lots))
            links.append(len(found.links[direction]))
            levels.append(found.depth(direction))
    return {
        "traces": len(millis),
        "p50_ms": round(percentile(millis, 0.50), 2),
        "p95_ms": round(percentile(millis, 0.95), 2),
        "p99_ms": round(percentile(millis, 0.99), 2),
        "max_ms": round(max(millis), 2),
        "mean_ms": round(statistics.fmean(millis), 2),
        "lots_median": statistics.median_low(lots),
        "lots_p95": int(percentile(lots, 0.95)),
        "lots_max": max(lots),
        "links_median": statistics.median_low(links),
        "levels_min": min(levels),
        "levels_max": max(levels),
        "six_level_share": round(sum(level >= TARGET_LEVELS for level in levels)
                                 / len(levels), 4),
    }


def _sample_plant() -> Path:
    return Path(str(resources.files("mes") / "samples" / "plant.toml"))


def run_trace_bench(lots: int, traces: int, seed: int, progress: Progress) -> dict[str, Any]:
    """Build the history, time the traces, drop the database; every figure in a dict."""
    if lots < 2000:
        raise TraceBenchError(f"--lots {lots}: at least 2,000 lots make six levels")
    cluster = running_local_cluster(
        "trace bench", "its bulk load runs as the superuser with triggers off",
        TraceBenchError)
    started = time.monotonic()
    results: dict[str, Any] = {"sizes": {"lots": lots, "traces": traces, "seed": seed,
                                         "warmup_traces": WARMUP_TRACES}}
    with scratch_database(cluster, "mes_bench_trace") as scratch:
        results["database"] = scratch.name
        progress(f"scratch database {scratch.name}: sample plant and the bracket's routing")
        with session_factory(scratch.url)() as session:
            acting(session, ADMINISTRATION)
            load_plant(session, read_plant_file(_sample_plant()), source="trace bench")
            reference = add_reference(session)
            session.commit()
        progress(f"synthetic history of {lots:,} lots over {len(STAGES)} stages")
        generated = time.monotonic()
        shape = make_shape(lots, seed)
        history = History(shape, reference, seed)
        generate_seconds = time.monotonic() - generated
        loaded = time.monotonic()
        with psycopg.connect(scratch.admin_url) as admin:
            rows = copy_history(admin, history, progress)
            load_seconds = time.monotonic() - loaded
            progress("ANALYZE")
            analyzed = time.monotonic()
            admin.execute("ANALYZE")
            admin.commit()
            analyze_seconds = time.monotonic() - analyzed
            out_of_balance = admin.execute(OUT_OF_BALANCE).fetchone()
            size = admin.execute("SELECT pg_database_size(current_database())").fetchone()
        assert out_of_balance is not None and size is not None
        results["history"] = {
            "lots": shape.lots,
            "stages": dict(shape.count),
            "rows": rows,
            "generate_seconds": round(generate_seconds, 1),
            "load_seconds": round(load_seconds, 1),
            "rows_per_second": round(sum(rows.values()) / load_seconds),
            "analyze_seconds": round(analyze_seconds, 1),
            "database_bytes": size[0],
            "lots_out_of_balance": out_of_balance[0],
            "bulk_load": BULK_LOAD,
        }
        rng = random.Random(seed + 2)
        count = min(traces + WARMUP_TRACES, shape.count[FINISHED], shape.count[RAW])
        pallets = [f"{FINISHED}-{n:07d}"
                   for n in rng.sample(range(1, shape.count[FINISHED] + 1), count)]
        coils = [f"{RAW}-{n:07d}" for n in rng.sample(range(1, shape.count[RAW] + 1), count)]
        progress(f"{count - WARMUP_TRACES} traces backward from pallets, after "
                 f"{WARMUP_TRACES} to warm up")
        results["backward"] = _time_traces(scratch.url, pallets, "backward")
        progress(f"{count - WARMUP_TRACES} traces forward from coils")
        results["forward"] = _time_traces(scratch.url, coils, "forward")
    results["target_p95_ms"] = TARGET_P95_MS
    results["target_levels"] = TARGET_LEVELS
    results["meets_target"] = all(
        results[d]["p95_ms"] < TARGET_P95_MS and results[d]["levels_min"] >= TARGET_LEVELS
        for d in ("backward", "forward"))
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


# --- the table people read ----------------------------------------------------------------

Row = tuple[str, str, str, str]


def _direction_rows(name: str, figures: dict[str, Any], target: float) -> list[Row]:
    return [
        (f"{name}: p50", f"{figures['p50_ms']:.1f} ms", f"mean {figures['mean_ms']:.1f} ms", ""),
        (f"{name}: p95", f"{figures['p95_ms']:.1f} ms", f"target < {target:g} ms",
         "ok" if figures["p95_ms"] < target else "MISSED"),
        (f"{name}: p99", f"{figures['p99_ms']:.1f} ms", f"max {figures['max_ms']:.1f} ms", ""),
        (f"{name}: levels reached", f"{figures['levels_min']}-{figures['levels_max']}",
         f"target {TARGET_LEVELS} ({figures['six_level_share']:.0%} of traces reach it)",
         "ok" if figures["levels_min"] >= TARGET_LEVELS else "MISSED"),
        (f"{name}: lots per trace", f"median {figures['lots_median']:,}",
         f"p95 {figures['lots_p95']:,}, max {figures['lots_max']:,}; "
         f"median {figures['links_median']:,} links", ""),
    ]


def render_trace_bench(results: dict[str, Any]) -> str:
    history, target = results["history"], results["target_p95_ms"]
    rows = history["rows"]
    stages = ", ".join(f"{prefix} {count:,}" for prefix, count in history["stages"].items())
    table: list[Row] = [
        ("lots in the history", f"{history['lots']:,}", "eight stages, six levels (above)", ""),
        ("genealogy links / movements", f"{rows['genealogy_link']:,} / "
         f"{rows['lot_movement']:,}", f"{rows['operation_run']:,} runs, "
         f"{rows['inspection_result']:,} inspection results, {rows['work_order']:,} orders",
         ""),
        ("bulk load", f"{history['load_seconds']:g} s",
         f"{history['rows_per_second']:,} rows/s; ANALYZE {history['analyze_seconds']:g} s; "
         f"{history['database_bytes'] / 2**20:,.0f} MiB", ""),
        ("lots whose quantity differs from their movements",
         f"{history['lots_out_of_balance']:,}", "must be 0",
         "ok" if history["lots_out_of_balance"] == 0 else "WRONG"),
        *_direction_rows("backward from a pallet", results["backward"], target),
        *_direction_rows("forward from a coil", results["forward"], target),
    ]
    header: Row = ("figure", "measured", "baseline / target", "")
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(3)]

    def line(row: Row) -> str:
        return (f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  "
                f"{row[3]}").rstrip()

    sizes = results["sizes"]
    return "\n".join([
        f"mes bench trace: scratch database {results['database']} (dropped), "
        f"{results['seconds']:g} s",
        f"target: a six-level trace in under {target:g} ms at p95 "
        f"({sizes['traces']:,} traces each way, the whole `mes trace` query work: walk, lots, "
        "movements, runs, inspections)",
        f"bulk load: {history['bulk_load']}",
        f"lots per stage: {stages}",
        "flow: COIL -> STRIP (split) -> STAMPED -> DEBURRED -> PAINTED (+ POWDER) -> CURED "
        "-> PALLET (merge)",
        "",
        line(header),
        *map(line, table),
    ])
