"""`mes bench sites`: two simulated sites and a central store on this machine, each its own
PostgreSQL + TimescaleDB cluster, and one NATS server with JetStream.

Measures what one site node's database carries (signals at 1 Hz, one binary COPY a second,
with that COPY's p99 under 1 s), the site -> central latency p99 while both sites forward,
the catch-up rate after a link outage (the outage's backlog is written while the
forwarders are stopped, instead of waiting out the minutes) and what a row costs centrally.
Everything it starts is stopped and its folders removed at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from mes import migrate
from mes.db import engine
from mes.localdb import LocalCluster, create_database
from mes.natsd import LocalNats, free_port
from mes.settings import get_settings
from transactional.errors import MesError

CATCH_UP_TARGET = 150_000  # rows/s
LATENCY_TARGET = 2.0  # seconds, p99
TAGS_PER_VCPU_TARGET = 9_000  # 20 x the 450 tags at 1 Hz the best-known open peer sizes for
COPY_P99_LIMIT = 1.0
# Sorts after every real signal within its transaction: when it is in the central store,
# everything its transaction stored is there too (messages are applied in order).
MARKER_SIGNAL = 2_147_483_647
START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY = "COPY ts.process_value (ts, signal_id, value, quality) FROM STDIN (FORMAT BINARY)"
SITES = ("A", "B")


class SitesBenchError(MesError):
    """The sites benchmark cannot run, or the central store disagrees with the sites."""


@dataclass(frozen=True)
class Sizes:
    signals: int  # per site, at 1 Hz, while forwarding
    seconds: int  # of steady forwarding for the latency
    outage_minutes: float  # the link outage whose backlog is caught up
    capacity_steps: tuple[int, ...]  # signals tried on one site node
    capacity_seconds: int  # of 1 Hz COPYs per step


def sizes_for(quick: bool, signals: int | None, seconds: int | None,
              outage_minutes: float | None) -> Sizes:
    if quick:
        base = Sizes(200, 3, 0.5, (1_000, 2_000), 3)
    else:
        base = Sizes(2_000, 20, 10, (10_000, 20_000, 40_000, 80_000, 160_000, 320_000), 10)
    return Sizes(signals or base.signals, seconds or base.seconds,
                 outage_minutes or base.outage_minutes, base.capacity_steps,
                 base.capacity_seconds)


def second_of_values(signals: int, second: int) -> bytes:
    """One binary COPY of `signals` process values (ids 1..signals) at START + second, and
    the marker row last; built with bytes.join, so the bench's own CPU stays small."""
    micros = int(((START + dt.timedelta(seconds=second)) - _PG_EPOCH).total_seconds() * 1e6)
    stamp = struct.pack("!hiq", 4, 8, micros)
    rows = [struct.pack("!iiidih", 4, signal_id, 8, float(second % 100), 2, 0)
            for signal_id in (*range(1, signals + 1), MARKER_SIGNAL)]
    return _HEADER + stamp + stamp.join(rows) + b"\xff\xff"


def _copy(conn: psycopg.Connection[Any], payload: bytes) -> float:
    began = time.perf_counter()
    with conn.transaction(), conn.cursor() as cursor, cursor.copy(_COPY) as copy:
        copy.write(payload)
    return time.perf_counter() - began


def _p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


class Machine:
    """The clusters and the NATS server of the benchmark, in a folder of their own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clusters = {name: LocalCluster(home=folder / name, requested_port=free_port(),
                                            database="mes")
                         for name in (*SITES, "central")}
        # A hot standby of the central store, fed by streaming replication, as dashboards
        # would read it.
        self.replica = LocalCluster(home=folder / "central-replica",
                                    requested_port=free_port(), database="mes")
        self.nats = LocalNats(folder / "nats")
        self.children: list[subprocess.Popen[bytes]] = []

    def up(self, progress: Callable[[str], None]) -> None:
        for name, cluster in self.clusters.items():
            progress(f"starting cluster {name} on port {cluster.port}")
            cluster.up()
            migrate.upgrade(cluster.url())
            engine(cluster.url()).dispose()
        progress(f"starting a streaming replica of the central store on port "
                 f"{self.replica.port}")
        self.replica.up_as_replica_of(self.clusters["central"])
        self.nats.start()

    def down(self) -> None:
        for child in self.children:
            _stop(child)
        self.nats.stop()
        for cluster in (self.replica, *self.clusters.values()):
            with contextlib.suppress(MesError):
                cluster.remove()
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, name: str) -> str:
        return self.clusters[name].url()

    def start(self, *args: str, database: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "MES_DATABASE_URL": self.url(database),
               "MES_NATS_URL": self.nats.url}
        log = (self.folder / f"{'-'.join(args)}.log").open("ab")
        child = subprocess.Popen([sys.executable, "-m", "mes.cli", *args], env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        self.children.append(child)
        return child


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def bench_machine(progress: Callable[[str], None]) -> Iterator[Machine]:
    home = get_settings().home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    machine = Machine(Path(tempfile.mkdtemp(prefix="bench-sites-", dir=home)))
    try:
        machine.up(progress)
        yield machine
    finally:
        machine.down()


def site_capacity(machine: Machine, sizes: Sizes, progress: Callable[[str], None]
                  ) -> dict[str, Any]:
    """Signals at 1 Hz one site database takes with each second's COPY p99 under 1 s (in a
    database of its own beside the site's, nothing forwarded meanwhile)."""
    cluster = machine.clusters["A"]
    with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
        create_database(admin, "capacity")
    url = cluster.url("capacity")
    migrate.upgrade(url)
    engine(url).dispose()
    steps = []
    carried = 0
    with psycopg.connect(url) as conn:
        for step, signals in enumerate(sizes.capacity_steps, start=1):
            progress(f"site capacity: {signals:,} signals at 1 Hz for {sizes.capacity_seconds} s")
            payloads = [second_of_values(signals, step * 86_400 + second)
                        for second in range(sizes.capacity_seconds)]
            timings = []
            began = time.monotonic()
            for second, payload in enumerate(payloads):
                timings.append(_copy(conn, payload))
                wait = began + second + 1 - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            p99 = _p99(timings)
            steps.append({"signals": signals, "copy_p99_seconds": round(p99, 3),
                          "copy_median_seconds": round(statistics.median(timings), 3)})
            if p99 >= COPY_P99_LIMIT:
                break
            carried = signals
    cpus = os.cpu_count() or 1
    return {"capacity_steps": steps, "site_capacity_signals_1hz": carried, "cpus": cpus,
            "site_tags_per_second_per_vcpu": carried // cpus}


class _SiteLoad:
    """Both sites storing `signals` values a second in a thread each; the commit time of
    every second is kept for the latency."""

    def __init__(self, machine: Machine, signals: int, first: int) -> None:
        self.machine = machine
        self.signals = signals
        self.first = first
        self.committed: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(code,)) for code in SITES]

    def __enter__(self) -> _SiteLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _run(self, code: str) -> None:
        began = time.monotonic()
        with psycopg.connect(self.machine.url(code)) as conn:
            second = 0
            while not self.stop.is_set():
                _copy(conn, second_of_values(self.signals, self.first + second))
                self.committed[(code, self.first + second)] = time.time()
                second += 1
                self.stop.wait(max(0.0, began + second - time.monotonic()))


_MARKERS = """
SELECT s.code, extract(epoch FROM max(p.ts) - %(start)s)::int
FROM central.process_value p JOIN central.site s ON s.id = p.site_id
WHERE p.signal_id = %(marker)s
GROUP BY s.code
"""


def _arrived(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(_MARKERS, {"start": START, "marker": MARKER_SIGNAL}).fetchall()
    conn.commit()
    return {code: int(second) for code, second in rows}


def latency(machine: Machine, sizes: Sizes, progress: Callable[[str], None]
            ) -> dict[str, Any]:
    progress(f"site -> central latency: 2 sites x {sizes.signals:,} signals at 1 Hz for "
             f"{sizes.seconds} s, once both sites arrive")
    seen: dict[tuple[str, int], float] = {}
    measuring_from: float | None = None
    with psycopg.connect(machine.url("central")) as central, _SiteLoad(
            machine, sizes.signals, 0) as load:
        deadline = time.monotonic() + 60  # for the forwarders and the consumer to start
        while time.monotonic() < deadline:
            now = time.time()
            arrived = _arrived(central)
            for code, second in arrived.items():
                # Every second up to the marker's is there (applied in order).
                for earlier in range(second + 1):
                    seen.setdefault((code, earlier), now)
            if measuring_from is None and len(arrived) == len(SITES):
                measuring_from = now
                deadline = time.monotonic() + sizes.seconds
            time.sleep(0.02)
        load.stop.set()
    if measuring_from is None:
        raise SitesBenchError("the sites' rows did not reach the central store within 60 s: "
                              f"see the logs in {machine.folder}")
    lags = [seen[key] - committed for key, committed in load.committed.items()
            if key in seen and committed >= measuring_from]
    return {"latency_p99_seconds": round(_p99(lags), 3),
            "latency_median_seconds": round(statistics.median(lags), 3),
            "latency_samples": len(lags)}


def catch_up(machine: Machine, sizes: Sizes, forwarders: dict[str, subprocess.Popen[bytes]],
             progress: Callable[[str], None]) -> dict[str, Any]:
    seconds = int(sizes.outage_minutes * 60)
    first = 100_000
    progress(f"link outage: forwarders stopped, each site stores {seconds} s x "
             f"{sizes.signals:,} signals")
    for child in forwarders.values():
        _stop(child)
    backlog = 0
    for code in SITES:
        with psycopg.connect(machine.url(code)) as conn:
            for second in range(seconds):
                _copy(conn, second_of_values(sizes.signals, first + second))
            backlog += seconds * (sizes.signals + 1)
    last = first + seconds - 1
    progress(f"link back: catching up {backlog:,} rows")
    began = time.monotonic()
    for code in SITES:
        forwarders[code] = machine.start("site", "forward", "--site", code, database=code)
    with psycopg.connect(machine.url("central")) as central:
        while True:
            arrived = _arrived(central)
            if all(arrived.get(code, -1) >= last for code in SITES):
                break
            if time.monotonic() - began > 600:
                raise SitesBenchError(f"the backlog was not caught up in 600 s: {arrived}")
            time.sleep(0.05)
    took = time.monotonic() - began
    return {"outage_seconds": seconds, "backlog_rows": backlog,
            "catch_up_seconds": round(took, 2), "catch_up_rows_per_second": int(backlog / took)}


_REPLICATION = """
SELECT extract(epoch FROM replay_lag), pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
FROM pg_stat_replication
"""


class ReplicaWatch:
    """Samples how far the central store's replica is behind, every 0.1 s, in a thread."""

    def __init__(self, primary_url: str) -> None:
        self.primary_url = primary_url
        self.lag_seconds: list[float] = []
        self.bytes_behind: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> ReplicaWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            while not self._stop.wait(0.1):
                row = conn.execute(_REPLICATION).fetchone()
                if row is None:
                    continue
                # replay_lag is NULL while the replica has nothing to replay.
                self.lag_seconds.append(float(row[0] or 0.0))
                self.bytes_behind.append(int(row[1] or 0))

    def figures(self, phase: str) -> dict[str, Any]:
        if not self.lag_seconds:
            return {}
        return {f"replica_{phase}_lag_p99_seconds": round(_p99(self.lag_seconds), 3),
                f"replica_{phase}_lag_max_seconds": round(max(self.lag_seconds), 3),
                f"replica_{phase}_max_bytes_behind": max(self.bytes_behind)}


@contextlib.contextmanager
def paused_replica(machine: Machine) -> Iterator[dict[str, Any]]:
    """Replay on the replica paused for the block; afterwards, the seconds it took to
    replay what the primary wrote meanwhile."""
    figures: dict[str, Any] = {}
    with psycopg.connect(machine.replica.admin_url(), autocommit=True) as replica, \
            psycopg.connect(machine.clusters["central"].admin_url(), autocommit=True) as primary:
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            yield figures
        finally:
            row = primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            assert row is not None
            target = row[0]
            began = time.monotonic()
            replica.execute("SELECT pg_wal_replay_resume()")
            while True:
                done = replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                       (target,)).fetchone()
                if (done and done[0]) or time.monotonic() - began > 600:
                    break
                time.sleep(0.05)
            figures["replica_catch_up_seconds"] = round(time.monotonic() - began, 2)


def replica_rows(machine: Machine, expected: int) -> int:
    """Process-value rows the replica shows, once it shows `expected` (or after 60 s)."""
    deadline = time.monotonic() + 60
    with psycopg.connect(machine.replica.url(), autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM central.process_value").fetchone()
            held = int(row[0]) if row else 0
            if held >= expected or time.monotonic() > deadline:
                return held
            time.sleep(0.2)


_SIZE = """
SELECT hypertable_size(%s::regclass), (SELECT count(*) FROM {table})
"""


def _bytes_per_row(url: str, table: str) -> tuple[int, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")
        row = conn.execute(_SIZE.format(table=table), (table,)).fetchone()
    assert row is not None
    return int(row[1]), round(int(row[0]) / max(1, int(row[1])), 1)


def compare_sides(machine: Machine) -> dict[str, Any]:
    """Rows per site and minute on both sides: none may be missing or there twice."""
    per_minute = ("SELECT date_trunc('minute', ts), count(*) FROM ts.process_value "
                  "GROUP BY 1")
    central_per_minute = ("SELECT date_trunc('minute', p.ts), count(*) FROM "
                          "central.process_value p JOIN central.site s ON s.id = p.site_id "
                          "WHERE s.code = %s GROUP BY 1")
    lost = duplicated = 0
    with psycopg.connect(machine.url("central")) as central:
        for code in SITES:
            with psycopg.connect(machine.url(code)) as site:
                here: dict[dt.datetime, int] = dict(site.execute(per_minute).fetchall())
            there: dict[dt.datetime, int] = dict(
                central.execute(central_per_minute, (code,)).fetchall())
            for minute in here.keys() | there.keys():
                difference = int(here.get(minute, 0)) - int(there.get(minute, 0))
                lost += max(0, difference)
                duplicated += max(0, -difference)
    return {"rows_lost": lost, "rows_duplicated": duplicated}


def run_sites_bench(sizes: Sizes, progress: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {"signals_per_site": sizes.signals,
                               "outage_minutes": sizes.outage_minutes}
    with bench_machine(progress) as machine:
        results.update(site_capacity(machine, sizes, progress))
        machine.start("central", "ingest", database="central")
        forwarders = {code: machine.start("site", "forward", "--site", code, database=code)
                      for code in SITES}
        with ReplicaWatch(machine.clusters["central"].admin_url()) as watch:
            results.update(latency(machine, sizes, progress))
        results.update(watch.figures("steady"))
        # The replica stands for another host: on these two cores its replay would compete
        # with the catch-up, so it is paused, and its own catch-up timed afterwards.
        with paused_replica(machine) as replica_catch_up:
            results.update(catch_up(machine, sizes, forwarders, progress))
        results.update(replica_catch_up)
        results.update(compare_sides(machine))
        rows, per_row = _bytes_per_row(machine.url("central"), "central.process_value")
        results["central_rows"] = rows
        results["central_bytes_per_row"] = per_row
        results["replica_rows"] = replica_rows(machine, rows)
        results["site_bytes_per_row"] = _bytes_per_row(machine.url("A"), "ts.process_value")[1]
    return results


def render_sites_bench(results: dict[str, Any]) -> str:
    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    capacity = results["site_capacity_signals_1hz"]
    per_vcpu = results["site_tags_per_second_per_vcpu"]
    lines = [
        f"two sites x {results['signals_per_site']:,} signals at 1 Hz, central store, NATS "
        f"JetStream, on {results['cpus']} CPUs",
        "site capacity (1 Hz, one COPY a second, p99 < 1 s):",
        *(f"  {s['signals']:>9,} signals: COPY p99 {s['copy_p99_seconds']:.3f} s, median "
          f"{s['copy_median_seconds']:.3f} s" for s in results["capacity_steps"]),
        f"  carried: {capacity:,} signals = {per_vcpu:,} tags/s per vCPU "
        f"(target >= {TAGS_PER_VCPU_TARGET:,}: {verdict(per_vcpu >= TAGS_PER_VCPU_TARGET)})",
        f"site -> central latency: p99 {results['latency_p99_seconds']:.2f} s, median "
        f"{results['latency_median_seconds']:.2f} s over {results['latency_samples']} "
        f"site-seconds (target p99 < {LATENCY_TARGET:.0f} s: "
        f"{verdict(results['latency_p99_seconds'] < LATENCY_TARGET)})",
        f"catch-up after a {results['outage_minutes']:g}-minute outage (backlog written while "
        f"the forwarders were stopped): {results['backlog_rows']:,} rows in "
        f"{results['catch_up_seconds']:.1f} s = {results['catch_up_rows_per_second']:,} rows/s "
        f"(target >= {CATCH_UP_TARGET:,}: "
        f"{verdict(results['catch_up_rows_per_second'] >= CATCH_UP_TARGET)})",
        f"central store: {results['central_rows']:,} process-value rows, "
        f"{results['central_bytes_per_row']:.1f} bytes per row with its index (site: "
        f"{results['site_bytes_per_row']:.1f})",
        f"per site and minute on both sides: {results['rows_lost']} rows lost, "
        f"{results['rows_duplicated']} duplicated",
        f"central read replica (streaming replication): {results['replica_rows']:,} rows "
        f"visible; replay lag while forwarding p99 "
        f"{results.get('replica_steady_lag_p99_seconds', 0):.3f} s (max "
        f"{results.get('replica_steady_max_bytes_behind', 0):,} bytes behind); paused during "
        f"the catch-up, it replayed the catch-up's WAL in "
        f"{results['replica_catch_up_seconds']:.1f} s",
    ]
    return "\n".join(lines)
