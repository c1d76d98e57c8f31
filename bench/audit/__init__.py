"""`mes bench audit`: audited against unaudited inserts at 1, 4 and 16 clients, measured
with pgbench in the same scratch database in one run, while the sealer seals.

Both tables take the same insert under the same acting person; only one has the audit
trigger. The figures say whether audited writers still run in parallel (the target:
audited at least half of unaudited at 16 clients). It measures; it does not tune.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.scratch import running_local_cluster, scratch_database
from transactional.errors import MesError

CLIENTS = (1, 4, 16)
TARGET = 0.5  # audited / unaudited at 16 clients
SETUP = """
CREATE TABLE public.bench_unaudited (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                     n integer NOT NULL);
CREATE TABLE public.bench_audited (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                   n integer NOT NULL);
CREATE TRIGGER tr_bench_audited_audit AFTER INSERT OR UPDATE OR DELETE ON public.bench_audited
    FOR EACH ROW EXECUTE FUNCTION mes.audit_row();
"""
SCRIPT = """BEGIN;
SELECT set_config('mes.actor', 'mes-admin', true);
INSERT INTO public.{table} (n) VALUES (1);
COMMIT;
"""
TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


class BenchError(MesError):
    """The benchmark cannot run here."""


def pgbench_path() -> str:
    found = shutil.which("pgbench") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"))), None)
    if found is None:
        raise BenchError("pgbench is not installed (Debian: postgresql-contrib or the "
                         "postgresql-NN package)")
    return found


def _pgbench(url: str, table: str, clients: int, seconds: float, folder: Path) -> float:
    script = folder / f"{table}.sql"
    script.write_text(SCRIPT.format(table=table))
    done = subprocess.run(
        [pgbench_path(), "-n", "-f", str(script), "-c", str(clients), "-j", str(min(clients, 4)),
         "-T", str(max(1, round(seconds))), url],
        capture_output=True, text=True, check=False)
    found = TPS.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise BenchError(f"pgbench failed: {done.stderr.strip() or done.stdout.strip()}")
    return float(found.group(1))


class _Sealer(threading.Thread):
    """Seals what the writers committed, as the commands do after each commit."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.sealed = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute("SELECT mes.audit_seal(50000)").fetchone()
                self.sealed += int(row[0]) if row else 0
                time.sleep(0.05)
            while True:  # what is left once the writers stopped
                row = conn.execute("SELECT mes.audit_seal()").fetchone()
                if not row or not row[0]:
                    break
                self.sealed += int(row[0])


def run_audit_bench(seconds: float, progress: Callable[[str], None]) -> dict[str, Any]:
    cluster = running_local_cluster("audit benchmark", "it runs pgbench as the superuser",
                                    BenchError)
    results: dict[str, Any] = {"seconds_per_point": seconds, "points": []}
    with scratch_database(cluster, "mes_bench_audit") as scratch, \
            tempfile.TemporaryDirectory() as folder:
        with psycopg.connect(scratch.admin_url, autocommit=True) as admin:
            admin.execute(SETUP)
        for clients in CLIENTS:
            point: dict[str, Any] = {"clients": clients}
            for table in ("bench_unaudited", "bench_audited"):
                progress(f"{table}, {clients} client(s), {seconds:g} s")
                sealer = _Sealer(scratch.admin_url)
                sealer.start()
                try:
                    point[table.removeprefix("bench_")] = _pgbench(
                        scratch.admin_url, table, clients, seconds, Path(folder))
                finally:
                    sealer.stop.set()
                    sealer.join()
            point["ratio"] = point["audited"] / point["unaudited"]
            results["points"].append(point)
        with psycopg.connect(scratch.admin_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*), count(*) FILTER (WHERE chain_position IS NULL) "
                "FROM mes.audit_log").fetchone()
            assert row is not None
            results["audit_records"], results["unsealed"] = int(row[0]), int(row[1])
    last = results["points"][-1]
    results["target_met"] = last["ratio"] >= TARGET
    return results


def render_audit_bench(results: dict[str, Any]) -> str:
    lines = [f"Audited writes against unaudited, pgbench, {results['seconds_per_point']:g} s "
             "per point, one insert per transaction",
             "",
             f"{'clients':>7}  {'unaudited tx/s':>14}  {'audited tx/s':>12}  "
             f"{'audited/unaudited':>17}"]
    for point in results["points"]:
        lines.append(f"{point['clients']:>7}  {point['unaudited']:>14,.0f}  "
                     f"{point['audited']:>12,.0f}  {point['ratio']:>17.2f}")
    lines += ["",
              f"target: audited at least {TARGET:.0%} of unaudited at 16 clients: "
              + ("met" if results["target_met"] else "NOT met"),
              "baseline (one chain row locked per writer, issue 10): 1,060-1,480 audited tx/s "
              "against 1,830-7,250 unaudited",
              f"{results['audit_records']:,} audit records written and sealed "
              f"({results['unsealed']} left unsealed)"]
    return "\n".join(lines)
