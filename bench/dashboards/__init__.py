"""`mes bench dashboards`: the data behind the board and the analysts' pages over a month of
a 100-machine plant, each timed beside its target.

A scratch database gets 30 days x 100 machines of states (one change a machine-minute),
counts (1 Hz on the last day up to the board's "now"; on the days before, one row a
machine-minute holding that minute's parts, to keep generation within minutes) and the
derived tables of every day (derived for real, day by day). Timed: the board's data for one
refresh as a running server does it (`LiveBoard`: live shift derivation with the counts of
past minutes kept; running orders, holds), the first refresh of a server (everything read),
the 30-day OEE trend per machine and day, the 30-day downtime Pareto, and the 30-day
company page with the plant's KPI rows forwarded as those of two sites into `central.kpi`
(each site per day and the company's total from their base quantities). Everything is
dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.oee import COUNTS, STATES, bench_plant, committed_and_analyzed, load_bench_plant
from bench.scratch import running_local_cluster, scratch_database
from mes.db import as_role, session_factory
from pipelines import reports
from pipelines.derive import derive_day
from pipelines.live import LiveBoard, live_shift
from transactional import overview
from transactional.errors import MesError
from transactional.permissions import APPLICATION_ROLE

FIRST_DAY = dt.date(2026, 10, 1)
# The board looks at 10:00 UTC of the last day: 4 hours into the early shift.
BOARD_HOUR = 10
TARGETS = {"board_refresh": 0.25, "oee_trend": 1.0, "downtime_pareto": 1.0,
           "company_trend": 1.0}

ALL_DAY = ('[[shift_calendars.shifts]]\ncode = "ALL"\nname = "All day"\nstart = "00:00"\n'
           'end = "00:00"\nweekdays = [1, 2, 3, 4, 5, 6, 7]\n')
THREE_SHIFTS = "\n".join(
    f'[[shift_calendars.shifts]]\ncode = "{code}"\nname = "{code}"\nstart = "{start}"\n'
    f'end = "{end}"\nweekdays = [1, 2, 3, 4, 5, 6, 7]\n'
    for code, start, end in (("EARLY", "06:00", "14:00"), ("LATE", "14:00", "22:00"),
                             ("NIGHT", "22:00", "06:00")))

# One row a machine-minute with that minute's parts: 60 good, every 50th minute 58 and a reject.
MINUTE_COUNTS = """
INSERT INTO ts.production_count (ts, equipment_id, good, reject)
SELECT %(start)s::timestamptz + make_interval(mins => m), e.id,
       59 - ((m + e.id) %% 50 = 0)::int + ((m + e.id) %% 50 <> 0)::int,
       1 - ((m + e.id) %% 50 <> 0)::int
FROM mes.equipment e, generate_series(0, %(minutes)s - 1) m
WHERE e.level = 'work_unit'
"""


# The plant's equipment and KPI rows as the central store holds them from two sites.
TWO_SITES = (
    "INSERT INTO central.site (id, code) VALUES (1, 'SITE-A'), (2, 'SITE-B')",
    "INSERT INTO central.equipment SELECT s.id, e.* FROM mes.equipment e, central.site s",
    "INSERT INTO central.kpi SELECT s.id, k.* FROM derived.kpi k, central.site s",
    "ANALYZE central.kpi",
)


class DashboardsBenchError(MesError):
    """The benchmark cannot run (no local cluster)."""


def _timed(work: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best and median seconds of `rounds` runs after one warm-up."""
    work()
    seconds = []
    for _ in range(rounds):
        clock = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - clock)
    return min(seconds), statistics.median(seconds)


def run_dashboards_bench(machines: int, days: int, rounds: int,
                         progress: Callable[[str], None]) -> dict[str, Any]:
    cluster = running_local_cluster("dashboards benchmark", "a scratch database it drops",
                                    DashboardsBenchError)
    results: dict[str, Any] = {"machines": machines, "days": days, "rounds": rounds}
    with scratch_database(cluster, "mes_bench_dash") as scratch:
        load_bench_plant(scratch.url, scratch.name,
                         bench_plant(machines).replace(ALL_DAY, THREE_SHIFTS))
        start = dt.datetime.combine(FIRST_DAY, dt.time(), tzinfo=dt.UTC)
        last = start + dt.timedelta(days=days - 1)
        now = last + dt.timedelta(hours=BOARD_HOUR)
        progress(f"generating {days} days of {machines} machines: states, counts")
        clock = time.perf_counter()
        with psycopg.connect(scratch.url) as conn:
            conn.execute(STATES, {"start": start, "days": days})
            conn.execute("DELETE FROM ts.equipment_state WHERE ts > %s", (now,))
            if days > 1:
                conn.execute(MINUTE_COUNTS, {"start": start, "minutes": (days - 1) * 1440})
            conn.execute(COUNTS, {"start": last, "first": 0, "last": BOARD_HOUR * 3600})
            results["state_rows"], results["count_rows"] = committed_and_analyzed(conn)
        results["load_seconds"] = round(time.perf_counter() - clock, 1)
        progress(f"deriving {days} day partitions")
        clock = time.perf_counter()
        for n in range(days):
            derive_day(scratch.url, FIRST_DAY + dt.timedelta(days=n), now=now)
        results["derive_seconds"] = round(time.perf_counter() - clock, 1)
        with psycopg.connect(scratch.url) as conn:
            kpi_rows = conn.execute("SELECT count(*) FROM derived.kpi").fetchone()
            events = conn.execute("SELECT count(*) FROM derived.downtime_event").fetchone()
        assert kpi_rows is not None and events is not None
        results["kpi_rows"], results["downtime_events"] = kpi_rows[0], events[0]

        progress("timing the board's data for one refresh, the OEE trend, the Pareto and the "
                 "company page")
        factory = session_factory(scratch.url)
        lines = max(1, machines // 10)
        # The readers connect as the dashboards' do: as the application role.
        reader = as_role(scratch.url, APPLICATION_ROLE)
        served = LiveBoard(reader)
        refreshes = itertools.count()

        def board() -> None:
            # As the board runs: the server's LiveBoard, 5 s later at each refresh.
            live = served.shift(now + dt.timedelta(seconds=5 * next(refreshes)))
            assert live.kpis.height == machines + lines
            with factory() as session, session.begin():
                overview.order_progress(session)
                overview.held_lots(session)

        def first_board() -> None:
            live = live_shift(reader, now)
            assert live.kpis.height == machines + lines

        end = start + dt.timedelta(days=days)
        trend_rows: list[int] = []

        def trend() -> None:
            trend_rows.append(reports.kpi_trend(reader, start, end, scope="machine",
                                                period="day").height)

        reasons: list[int] = []

        def pareto() -> None:
            reasons.append(reports.downtime_pareto(reader, start, end).height)

        with psycopg.connect(scratch.url) as conn:
            for statement in TWO_SITES:
                conn.execute(statement)
        company_rows: list[int] = []

        def company() -> None:
            sites = reports.central_days(reader, start, end)
            company_rows.append(reports.company_days(sites).height)

        for name, work in (("board_refresh", board), ("board_first", first_board),
                           ("oee_trend", trend), ("downtime_pareto", pareto),
                           ("company_trend", company)):
            best, median = _timed(work, rounds)
            results[f"{name}_seconds"] = round(best, 3)
            results[f"{name}_median_seconds"] = round(median, 3)
        served.close()
        results["oee_trend_rows"] = trend_rows[-1]
        results["pareto_reasons"] = reasons[-1]
        results["company_days"] = company_rows[-1]
    return results


def render_dashboards_bench(results: dict[str, Any]) -> str:
    r = results

    def line(name: str, what: str) -> str:
        seconds, target = r[f"{name}_seconds"], TARGETS[name]
        return (f"  {what}: {seconds * 1000:.0f} ms best, {r[f'{name}_median_seconds'] * 1000:.0f}"
                f" ms median of {r['rounds']} (target < {target * 1000:.0f} ms: "
                f"{'met' if seconds < target else 'NOT met'})")

    return "\n".join([
        f"dashboards benchmark: {r['machines']} machines x {r['days']} days; "
        f"{r['state_rows']:,} state rows, {r['count_rows']:,} count rows (1 Hz on the last "
        f"day up to the board's time, one row a machine-minute before; generated in "
        f"{r['load_seconds']} s); {r['kpi_rows']:,} KPI rows and {r['downtime_events']:,} "
        f"downtime events derived in {r['derive_seconds']} s",
        line("board_refresh", "board data for one refresh (live shift, 4 h into it)"),
        f"  the board's first refresh in a server process (every count of the shift read): "
        f"{r['board_first_seconds'] * 1000:.0f} ms best, "
        f"{r['board_first_median_seconds'] * 1000:.0f} ms median (no target)",
        line("oee_trend", f"{r['days']}-day OEE trend ({r['oee_trend_rows']:,} machine-days)"),
        line("downtime_pareto", f"{r['days']}-day downtime Pareto ({r['pareto_reasons']} "
                                "reasons)"),
        line("company_trend", f"{r['days']}-day company page from central.kpi (2 sites, "
                              f"{r['company_days']} company days)"),
    ])
