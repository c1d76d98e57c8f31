"""`mes bench exposure`: one machine with DAYS days of one 1 Hz process value and RUNS
back-to-back runs, each making a lot (every ten lots go on a pallet); times the exposure
query `mes lot exposed` uses (stored envelopes, samples only where needed) beside a naive
join of every sample to the runs, from the same run, and checks both find the same lots.

Builds everything in a scratch database on the local cluster and drops it; it measures and
changes nothing else.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from bench.scratch import running_local_cluster, scratch_database
from mes.db import session_factory
from transactional.audit import acting
from transactional.errors import MesError
from transactional.exposure import exposed_lots, record_envelopes
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

Progress = Callable[[str], None]
TARGET_SECONDS = 1.0
SIGNAL = "PRESS-1.temperature"  # limits 10..90 degC in the sample plant
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TIMED_ROUNDS = 5

REFERENCE = """
INSERT INTO mes.product_definition (code, name, material_id)
    SELECT 'BENCH', 'Bench bracket', id FROM mes.material_definition WHERE code = 'BRACKET-A';
INSERT INTO mes.routing_operation (product_id, sequence, code, name, work_center_type,
                                   standard_seconds_per_unit, output_material_id)
    SELECT p.id, 10, 'STAMP', 'Stamp', 'STAMPING', 1, m.id
    FROM mes.product_definition p, mes.material_definition m
    WHERE p.code = 'BENCH' AND m.code = 'BRACKET-RAW';
INSERT INTO mes.work_order (code, product_id, quantity, status)
    SELECT 'BENCH-1', id, 1e9, 'in_progress' FROM mes.product_definition WHERE code = 'BENCH';
INSERT INTO mes.storage_location (code, name) VALUES ('BENCH', 'Bench');
"""
RUNS = """
INSERT INTO mes.operation_run (work_order_id, operation_id, equipment_id, operator_id,
    status, planned_quantity, good_quantity, started_at, ended_at)
SELECT wo.id, ro.id, e.id, (SELECT min(id) FROM mes.person), 'completed', 100, 100,
       %(start)s + i * %(run)s * interval '1 second',
       %(start)s + (i + 1) * %(run)s * interval '1 second'
FROM generate_series(0, %(runs)s - 1) i, mes.work_order wo, mes.routing_operation ro,
     mes.equipment e
WHERE wo.code = 'BENCH-1' AND ro.code = 'STAMP' AND e.code = 'PRESS-1'
"""
LOTS = """
INSERT INTO mes.material_lot (code, material_id, location_id, produced_by_run_id)
SELECT 'L-' || r.id, ro.output_material_id, (SELECT id FROM mes.storage_location
                                              WHERE code = 'BENCH'), r.id
FROM mes.operation_run r JOIN mes.routing_operation ro ON ro.id = r.operation_id;
INSERT INTO mes.material_lot (code, material_id, location_id)
SELECT 'PALLET-' || p, m.id, (SELECT id FROM mes.storage_location WHERE code = 'BENCH')
FROM generate_series(0, (SELECT count(*) FROM mes.operation_run) / 10) p,
     mes.material_definition m WHERE m.code = 'BRACKET-A';
INSERT INTO mes.genealogy_link (parent_lot_id, child_lot_id, kind, run_id)
SELECT l.id, p.id, 'consumed', l.produced_by_run_id
FROM mes.material_lot l
JOIN mes.material_lot p ON p.code = 'PALLET-' || (l.produced_by_run_id / 10)
WHERE l.code LIKE 'L-%%';
"""
SAMPLES = """
INSERT INTO ts.process_value (ts, signal_id, value, quality)
SELECT %(start)s + s * interval '1 second', %(signal)s,
       50 + 15 * sin(s / 3600.0) + random() * 4, 0
FROM generate_series(0, %(samples)s - 1) s
"""
EXCURSIONS = """
UPDATE ts.process_value v SET value = 91 + random() * 10
FROM unnest(%(starts)s::timestamptz[], %(seconds)s::int[]) e(s, n)
WHERE v.signal_id = %(signal)s AND v.ts >= e.s AND v.ts < e.s + e.n * interval '1 second'
"""
# Every sample joined to the run it fell in, then filtered: what one writes first.
NAIVE = """
SELECT DISTINCT l.code
FROM mes.operation_run r
JOIN ts.process_value v ON v.signal_id = %(signal)s
    AND v.ts >= r.started_at AND v.ts < coalesce(r.ended_at, now())
JOIN mes.material_lot l ON l.produced_by_run_id = r.id
WHERE r.equipment_id = %(machine)s AND (v.value < %(low)s OR v.value > %(high)s)
"""


class ExposureBenchError(MesError):
    """The exposure bench cannot run; the message says why and what to do."""


def _sample_plant() -> Path:
    return Path(str(resources.files("mes") / "samples" / "plant.toml"))


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def run_exposure_bench(days: int, runs: int, excursions: int, seed: int,
                       progress: Progress) -> dict[str, Any]:
    """Build the history, time both queries, drop the database; every figure in a dict."""
    if runs < 10 or days < 1:
        raise ExposureBenchError("at least 1 day and 10 runs")
    cluster = running_local_cluster(
        "exposure bench", "its bulk load runs as the superuser with triggers off",
        ExposureBenchError)
    samples = days * 86_400
    run_seconds = samples / runs
    rng = random.Random(seed)
    starts = sorted(START + dt.timedelta(seconds=rng.randrange(samples - 200))
                    for _ in range(excursions))
    lengths = [rng.randint(5, 120) for _ in starts]
    results: dict[str, Any] = {"sizes": {"days": days, "samples": samples, "runs": runs,
                                         "run_seconds": round(run_seconds, 2),
                                         "excursions": excursions, "seed": seed}}
    began = time.monotonic()
    with scratch_database(cluster, "mes_bench_exposure") as scratch:
        results["database"] = scratch.name
        with session_factory(scratch.url)() as session:
            acting(session, ADMINISTRATION)
            load_plant(session, read_plant_file(_sample_plant()), source="exposure bench")
            session.commit()
        with psycopg.connect(scratch.admin_url) as admin:
            admin.execute("SET session_replication_role = replica")  # no audit on the load
            admin.execute(REFERENCE)
            row = admin.execute("SELECT s.id, s.equipment_id, s.low_limit, s.high_limit "
                                "FROM mes.signal s WHERE s.code = %s", (SIGNAL,)).fetchone()
            assert row is not None
            signal, machine, low, high = row
            progress(f"{runs:,} runs and lots, {runs // 10 + 1:,} pallets")
            load_runs, _ = _timed(lambda: (
                admin.execute(RUNS, {"start": START, "run": run_seconds, "runs": runs}),
                admin.execute(LOTS)))
            progress(f"{samples:,} samples of {SIGNAL}, {excursions} excursions above "
                     f"{high}")
            load_samples, _ = _timed(lambda: (
                admin.execute(SAMPLES, {"start": START, "signal": signal,
                                        "samples": samples}),
                admin.execute(EXCURSIONS, {"starts": starts, "seconds": lengths,
                                           "signal": signal})))
            admin.commit()
        with session_factory(scratch.url)() as session:
            progress("envelopes of every run (what completing a run stores)")
            run_ids = list(session.execute(text("SELECT id FROM mes.operation_run")).scalars())
            envelope_seconds, _ = _timed(lambda: record_envelopes(session, run_ids))
            session.commit()
        with psycopg.connect(scratch.admin_url, autocommit=True) as admin:
            admin.execute("ANALYZE")
        progress("timing the exposure query and the naive join")
        fast: list[float] = []
        found: set[str] = set()
        with session_factory(scratch.url)() as session:
            exposed_lots(session, SIGNAL)  # warm-up
            session.rollback()
            for _ in range(TIMED_ROUNDS):
                seconds, exposure = _timed(lambda: exposed_lots(session, SIGNAL))
                session.rollback()
                fast.append(seconds)
                found = {lot.code for lot in exposure.made}
                downstream = len(exposure.downstream)
                exposed_runs = len(exposure.runs)
        naive: list[float] = []
        naive_found: set[str] = set()
        with psycopg.connect(scratch.url) as conn:
            for _ in range(2):
                seconds, rows = _timed(lambda: conn.execute(NAIVE, {
                    "signal": signal, "machine": machine, "low": low,
                    "high": high}).fetchall())
                naive.append(seconds)
                naive_found = {str(r[0]) for r in rows}
            size = conn.execute("SELECT hypertable_size('ts.process_value')").fetchone()
    results.update({
        "load": {"runs_and_lots_seconds": round(load_runs, 2),
                 "samples_seconds": round(load_samples, 2),
                 "envelopes_seconds": round(envelope_seconds, 2),
                 "process_value_bytes": int(size[0]) if size else None},
        "exposed": {"runs": exposed_runs, "lots": len(found), "downstream_lots": downstream},
        "query_seconds": {"median": round(statistics.median(fast), 4),
                          "max": round(max(fast), 4), "rounds": [round(s, 4) for s in fast]},
        "naive_seconds": {"best": round(min(naive), 3), "rounds": [round(s, 3) for s in naive]},
        "same_lots": found == naive_found,
        "target_seconds": TARGET_SECONDS,
        "total_seconds": round(time.monotonic() - began, 1),
    })
    return results


def render_exposure_bench(results: dict[str, Any]) -> str:
    sizes, load = results["sizes"], results["load"]
    query, naive = results["query_seconds"], results["naive_seconds"]
    verdict = "meets" if query["median"] < results["target_seconds"] else "MISSES"
    return "\n".join([
        f"exposure bench: {sizes['samples']:,} samples at 1 Hz ({sizes['days']} days), "
        f"{sizes['runs']:,} runs of {sizes['run_seconds']} s each making a lot, "
        f"{sizes['excursions']} excursions (seed {sizes['seed']})",
        f"  load: runs and lots {load['runs_and_lots_seconds']} s, samples "
        f"{load['samples_seconds']} s, envelopes of every run {load['envelopes_seconds']} s",
        f"  exposed: {results['exposed']['runs']} runs, {results['exposed']['lots']} lots, "
        f"{results['exposed']['downstream_lots']} lots made from them",
        f"  mes lot exposed query: median {query['median'] * 1000:.1f} ms, max "
        f"{query['max'] * 1000:.1f} ms over {len(query['rounds'])} rounds ({verdict} the "
        f"{results['target_seconds']:g} s target)",
        f"  naive join of every sample to the runs: best {naive['best']:.2f} s "
        f"({naive['best'] / max(query['median'], 1e-9):,.0f}x slower)",
        f"  same lots found by both: {'yes' if results['same_lots'] else 'NO'}",
        f"  took {results['total_seconds']} s",
    ])
