"""Writer throughput against the database's own ceiling, and what a stored sample costs.

The same synthetic rows go through the project's Writer (queue, conditioning, batching,
binary COPY), through the server loading them from a file (the ceiling), through a raw
psycopg COPY and through a plain `executemany`. It measures; it judges nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.ingest.scratch import BenchError, ScratchDatabase
from ingest.conditioning import ProcessValueRow, Reading
from ingest.spool import Spool
from ingest.store import COPY_LAYOUT
from ingest.tagmap import Binding, PlantSignal
from ingest.writer import Writer
from mes.settings import get_settings

Progress = Callable[[str], None]

_COLUMNS, _TYPES = COPY_LAYOUT["process_value"]
_INSERT = "INSERT INTO ts.process_value (ts, signal_id, value, quality) VALUES (%s, %s, %s, %s)"
_COPY_IN = "COPY ts.process_value (ts, signal_id, value, quality) FROM STDIN (FORMAT BINARY)"
# Inside one day-sized chunk whatever the row count: 3 million rows of 1000 signals span
# 50 minutes at one sample per signal and second.
_FIRST_SAMPLE = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
NARROW_ROW_REFERENCE_BYTES = 106
RATIO_TARGET = 0.90


@dataclass(frozen=True)
class Workload:
    """Pre-generated samples: reading batches for the writer, tuples for the baselines."""

    batches: list[list[Reading]]
    rows: list[ProcessValueRow]
    signals: int

    @property
    def count(self) -> int:
        return len(self.rows)


def check_rows(rows: int, signals: int) -> None:
    if rows < signals or rows % signals:
        raise BenchError(f"--rows {rows}: give a multiple of the {signals} signals, "
                         f"one batch of {signals} samples per second of plant time")


def make_workload(rows: int, signals: int = 1000, seed: int = 7) -> Workload:
    """`rows` samples of `signals` signals, one batch per second of plant time."""
    check_rows(rows, signals)
    bindings = [Binding(PlantSignal(i, f"BENCH.{i:04d}", "process_value", 1 + (i - 1) // 50,
                                    f"BENCH-{1 + (i - 1) // 50:03d}", 0.0, 100.0),
                        "bench", f"ns=2;s=BENCH.{i:04d}")
                for i in range(1, signals + 1)]
    rng = random.Random(seed)
    batches: list[list[Reading]] = []
    tuples: list[ProcessValueRow] = []
    for second in range(rows // signals):
        ts = _FIRST_SAMPLE + dt.timedelta(seconds=second)
        batch = [Reading(binding, ts, rng.uniform(20.0, 80.0)) for binding in bindings]
        batches.append(batch)
        tuples += [(r.ts, r.binding.signal.signal_id, r.value, 0) for r in batch]
    return Workload(batches, tuples, signals)


async def _through_writer(url: str, batches: list[list[Reading]], spool: Path,
                          role: str | None) -> tuple[float, Writer]:
    writer = Writer(url, Spool(spool, 1 << 30), flush_rows=get_settings().flush_rows, role=role)
    started = time.perf_counter()
    running = asyncio.create_task(writer.run())
    for batch in batches:
        await writer.put(batch)
        await asyncio.sleep(0)
    await writer.close()
    await running
    return time.perf_counter() - started, writer


def writer_seconds(url: str, workload: Workload, spool: Path, role: str | None) -> float:
    elapsed, writer = asyncio.run(_through_writer(url, workload.batches, spool, role))
    health = writer.health
    if health.rows_written != workload.count or health.samples_dropped or health.spool_rows:
        raise BenchError(
            f"the writer stored {health.rows_written} of {workload.count} rows "
            f"({health.samples_dropped} dropped, {health.spool_rows} spooled): the figures "
            "would be meaningless; is the database healthy?")
    return elapsed


def _empty(admin: psycopg.Connection[Any]) -> None:
    admin.execute("TRUNCATE ts.process_value")
    # Each method starts without the previous one's dirty pages and WAL to write out.
    admin.execute("CHECKPOINT")


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM ts.process_value").fetchone()
    return int(row[0]) if row else 0


def _dump(admin: psycopg.Connection[Any], path: Path) -> None:
    """The stored rows, in the order the writer sent them, as a binary COPY file."""
    with path.open("wb") as file, admin.cursor() as cur, cur.copy(
            "COPY (SELECT ts, signal_id, value, quality FROM ts.process_value "
            "ORDER BY ts, signal_id) TO STDOUT (FORMAT BINARY)") as copy:
        for block in copy:
            file.write(block)
    path.chmod(0o644)  # read by the server, which runs as another OS user


def server_copy_seconds(admin: psycopg.Connection[Any], path: Path, expected: int) -> float:
    started = time.perf_counter()
    admin.execute(sql.SQL("COPY ts.process_value (ts, signal_id, value, quality) FROM {} "
                          "(FORMAT BINARY)").format(sql.Literal(str(path))))
    elapsed = time.perf_counter() - started
    if _count(admin) != expected:
        raise BenchError(f"the server loaded {_count(admin)} rows from {path}, "
                         f"not {expected}")
    return elapsed


def raw_copy_seconds(url: str, rows: list[ProcessValueRow]) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        batch = get_settings().flush_rows  # one transaction per writer-sized batch
        for start in range(0, len(rows), batch):
            with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_IN) as copy:
                copy.set_types(list(_TYPES))
                for row in rows[start:start + batch]:
                    copy.write_row(row)
        return time.perf_counter() - started


def executemany_seconds(url: str, rows: list[ProcessValueRow]) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_INSERT, rows)
        return time.perf_counter() - started


def storage(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    total = conn.execute("SELECT hypertable_size('ts.process_value')").fetchone()
    detail = conn.execute("SELECT table_bytes, index_bytes, toast_bytes, total_bytes "
                          "FROM hypertable_detailed_size('ts.process_value')").fetchone()
    rows = _count(conn)
    if total is None or detail is None or not rows:
        raise BenchError("ts.process_value is empty: nothing to measure the storage of")
    total_bytes = int(total[0])
    return {
        "rows": rows,
        "total_bytes": total_bytes,
        "table_bytes": int(detail[0] or 0),
        "index_bytes": int(detail[1] or 0),
        "toast_bytes": int(detail[2] or 0),
        "bytes_per_row": round(total_bytes / rows, 1),
        "table_bytes_per_row": round(int(detail[0] or 0) / rows, 1),
        "index_bytes_per_row": round(int(detail[1] or 0) / rows, 1),
        "reference_bytes_per_row": NARROW_ROW_REFERENCE_BYTES,
    }


def _rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1)


def measure(database: ScratchDatabase, workload: Workload, rounds: int,
            executemany_rows: int, role: str | None, progress: Progress,
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Throughput figures and the storage figures of the writer's last run.

    The Writer acts as `role`, as `mes collect` does; the baselines write as the owner.
    """
    writer_rates: list[float] = []
    ceiling_rates: list[float] = []
    stored: dict[str, Any] = {}
    n = workload.count
    with tempfile.TemporaryDirectory(prefix="mes-bench-") as scratch, psycopg.connect(
            database.admin_url, autocommit=True) as admin:
        folder = Path(scratch)
        folder.chmod(0o755)
        dump = folder / "process_value.copy"
        _empty(admin)
        for round_number in range(1, rounds + 1):
            seconds = writer_seconds(database.url, workload, folder / f"spool-{round_number}",
                                     role)
            writer_rates.append(_rate(n, seconds))
            progress(f"  round {round_number}/{rounds}: writer {n / seconds:,.0f} rows/s")
            if round_number == 1:
                _dump(admin, dump)
            if round_number == rounds:
                stored = storage(admin)
            _empty(admin)
            seconds = server_copy_seconds(admin, dump, n)
            ceiling_rates.append(_rate(n, seconds))
            progress(f"  round {round_number}/{rounds}: server COPY {n / seconds:,.0f} rows/s")
            _empty(admin)
        dump.unlink()
        raw = raw_copy_seconds(database.url, workload.rows)
        progress(f"  raw psycopg COPY {n / raw:,.0f} rows/s")
        _empty(admin)
        subset = workload.rows[:executemany_rows]
        many = executemany_seconds(database.url, subset)
        progress(f"  executemany {len(subset) / many:,.0f} rows/s")
        _empty(admin)
    # The best round of each: on a shared 2-core machine a round is only ever slowed down
    # (a checkpoint, autovacuum, a neighbour), so the fastest one is the closest to what
    # each method can do; the medians and every round are reported beside it.
    writer = max(writer_rates)
    ceiling = max(ceiling_rates)
    figures = {
        "rows": n,
        "signals": workload.signals,
        "rounds": rounds,
        "writer_rows_per_second": writer,
        "writer_rounds_rows_per_second": writer_rates,
        "ceiling_rows_per_second": ceiling,
        "ceiling_rounds_rows_per_second": ceiling_rates,
        "writer_to_ceiling": round(writer / ceiling, 3),
        "writer_median_rows_per_second": statistics.median(writer_rates),
        "ceiling_median_rows_per_second": statistics.median(ceiling_rates),
        "writer_to_ceiling_median": round(statistics.median(writer_rates)
                                          / statistics.median(ceiling_rates), 3),
        "writer_to_ceiling_target": RATIO_TARGET,
        "raw_copy_rows_per_second": _rate(n, raw),
        "raw_copy_transaction_rows": get_settings().flush_rows,
        "executemany_rows": len(subset),
        "executemany_rows_per_second": _rate(len(subset), many),
    }
    return figures, stored
