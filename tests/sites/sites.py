"""Shared pieces of the site tests: sites with the sample plant, a machine's rows written the
way collectors store them, and what each side holds, counted per site, machine and minute."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg

from ingest.sites.central import CentralIngest
from ingest.sites.forward import Forwarder
from tests.ingest.collecting import load_sample_plant

START = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.UTC)

# One second of every machine: a count row, a state row every 10 s, each process value.
_WRITE = """
INSERT INTO ts.production_count (ts, equipment_id, good, reject)
SELECT %(start)s::timestamptz + make_interval(secs => s), e.id, 1 + abs(s + e.id) %% 3, abs(s) %% 2
FROM mes.equipment e, generate_series(%(first)s::int, %(last)s::int - 1) s
WHERE e.level = 'work_unit';
INSERT INTO ts.equipment_state (ts, equipment_id, state, reason_code)
SELECT %(start)s::timestamptz + make_interval(secs => s), e.id, 1 + abs(s / 10) %% 3, NULL
FROM mes.equipment e, generate_series(%(first)s::int, %(last)s::int - 1) s
WHERE e.level = 'work_unit' AND s %% 10 = 0;
INSERT INTO ts.process_value (ts, signal_id, value, quality)
SELECT %(start)s::timestamptz + make_interval(secs => s), g.id, s * 0.5, 0
FROM mes.signal g, generate_series(%(first)s::int, %(last)s::int - 1) s
WHERE g.kind = 'process_value';
"""

_SITE_COUNTS = """
SELECT 'production_count', equipment_id, date_trunc('minute', ts), count(*), sum(good + reject)
FROM ts.production_count GROUP BY 1, 2, 3
UNION ALL
SELECT 'equipment_state', equipment_id, date_trunc('minute', ts), count(*), sum(state)
FROM ts.equipment_state GROUP BY 1, 2, 3
UNION ALL
SELECT 'process_value', g.equipment_id, date_trunc('minute', p.ts), count(*), sum(p.value)
FROM ts.process_value p JOIN mes.signal g ON g.id = p.signal_id GROUP BY 1, 2, 3
"""
_CENTRAL_COUNTS = """
SELECT 'production_count', equipment_id, date_trunc('minute', ts), count(*), sum(good + reject)
FROM central.production_count WHERE site_id = %(site)s GROUP BY 1, 2, 3
UNION ALL
SELECT 'equipment_state', equipment_id, date_trunc('minute', ts), count(*), sum(state)
FROM central.equipment_state WHERE site_id = %(site)s GROUP BY 1, 2, 3
UNION ALL
SELECT 'process_value', g.id, date_trunc('minute', p.ts), count(*), sum(p.value)
FROM central.process_value p
JOIN central.signal s ON s.site_id = p.site_id AND s.id = p.signal_id
JOIN central.equipment g ON g.site_id = s.site_id AND g.id = s.equipment_id
WHERE p.site_id = %(site)s GROUP BY 1, 2, 3
"""

Counts = dict[tuple[str, int, dt.datetime], tuple[int, float]]


def new_site(url: str) -> None:
    """The sample plant in the site database."""
    load_sample_plant(url)


def write_seconds(url: str, first: int, last: int) -> int:
    """Store seconds [first, last) after START for every machine, in one transaction;
    returns the rows stored."""
    with psycopg.connect(url) as conn:
        before = _rows(conn)
        for statement in filter(str.strip, _WRITE.split(";")):
            conn.execute(statement, {"start": START, "first": first, "last": last})
        conn.commit()
        return _rows(conn) - before


def _rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT (SELECT count(*) FROM ts.production_count) + "
                       "(SELECT count(*) FROM ts.equipment_state) + "
                       "(SELECT count(*) FROM ts.process_value)").fetchone()
    assert row is not None
    return int(row[0])


def site_counts(url: str) -> Counts:
    with psycopg.connect(url) as conn:
        return _counts(conn.execute(_SITE_COUNTS).fetchall())


def central_counts(url: str, code: str) -> Counts:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT id FROM central.site WHERE code = %s", (code,)).fetchone()
        if found is None:
            return {}
        return _counts(conn.execute(_CENTRAL_COUNTS, {"site": found[0]}).fetchall())


def _counts(rows: list[tuple[Any, ...]]) -> Counts:
    return {(table, int(machine), minute): (int(count), float(total))
            for table, machine, minute, count, total in rows}


def central_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM central.production_count) + "
                           "(SELECT count(*) FROM central.equipment_state) + "
                           "(SELECT count(*) FROM central.process_value)").fetchone()
    assert row is not None
    return int(row[0])


async def until_central_has(url: str, rows: int, timeout: float) -> None:
    """Wait until the central store holds `rows` time-series rows of all sites together."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = await asyncio.to_thread(central_rows, url)
        if held >= rows:
            return
        if loop.time() > deadline:
            raise AssertionError(f"after {timeout} s the central store holds {held} rows, "
                                 f"not {rows}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def forwarding(sites: dict[str, str], central_url: str, nats_url: str,
                     **forwarder_options: Any) -> AsyncIterator[
                         tuple[dict[str, Forwarder], CentralIngest]]:
    """A forwarder per site (code -> site database URL) and the central ingest, in this
    event loop, stopped cleanly at the end."""
    stop = asyncio.Event()
    forwarders = {code: Forwarder(url, nats_url, code, interval_seconds=0.05,
                                  **forwarder_options) for code, url in sites.items()}
    central = CentralIngest(central_url, nats_url, rescan_seconds=0.5)
    tasks = [asyncio.create_task(f.run(stop)) for f in forwarders.values()]
    tasks.append(asyncio.create_task(central.run(stop)))
    try:
        yield forwarders, central
    finally:
        stop.set()
        await asyncio.gather(*tasks)


class SiteWriter:
    """Stores `seconds_per_write` more seconds of every machine every `every` seconds in a
    thread, as collectors would while forwarding runs (or is cut off)."""

    def __init__(self, url: str, first: int = 0, seconds_per_write: int = 5,
                 every: float = 0.2) -> None:
        self.url = url
        self.next_second = first
        self.seconds_per_write = seconds_per_write
        self.every = every
        self.rows = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SiteWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            last = self.next_second + self.seconds_per_write
            self.rows += write_seconds(self.url, self.next_second, last)
            self.next_second = last
            self._stop.wait(self.every)


def forwarded_messages(site_url: str, central_url: str, code: str) -> tuple[int, int]:
    """Messages the site's forwarder had acknowledged, and messages the central store applied."""
    with psycopg.connect(site_url) as conn:
        row = conn.execute("SELECT next_message - 1 FROM site.forward_position "
                           "WHERE site_code = %s", (code,)).fetchone()
        published = int(row[0]) if row else 0
    with psycopg.connect(central_url) as conn:
        row = conn.execute("SELECT p.message FROM central.site_position p "
                           "JOIN central.site s ON s.id = p.site_id WHERE s.code = %s",
                           (code,)).fetchone()
        applied = int(row[0]) if row else 0
    return published, applied
