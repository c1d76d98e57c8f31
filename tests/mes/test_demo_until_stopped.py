"""`mes demo` without --seconds, as `./run demo` runs it: it serves the dashboards and goes
on collecting until Ctrl-C, then stops at once, with exit code 0, leaving no process behind."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.mes.demo_process import PROMPTLY, demo_process


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` now (from /proc), whatever session it started."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The name in parentheses may hold spaces: the fields after its ")" are fixed.
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    waiting = [pid]
    while waiting:
        for child in parents.get(waiting.pop(), []):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return found


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.slow
def test_demo_serves_until_ctrl_c_then_stops_everything_it_started(
        empty_db: str, tmp_path: Path) -> None:
    started: set[int] = set()
    try:
        with demo_process(empty_db, tmp_path) as demo:
            site = demo.serving()
            with urllib.request.urlopen(f"{site}/_stcore/health", timeout=10) as health:
                assert health.status == 200
            with urllib.request.urlopen(site, timeout=10) as page:
                assert page.status == 200 and b"<html" in page.read().lower()
            started = _descendants(demo.process.pid)
            assert started, "the dashboards run as a child process"
            with psycopg.connect(empty_db) as conn:
                live_from = conn.execute("SELECT now()").fetchone()
            demo.wait_for(r"^\s+\d+ s\s+received", 30)  # collecting goes on

            code = demo.interrupt()
        deadline = time.monotonic() + PROMPTLY
        while time.monotonic() < deadline and any(_running(pid) for pid in started):
            time.sleep(0.2)
        assert code == 0, demo.output
        assert "stopping" in demo.output and "Traceback" not in demo.output, demo.output
        assert not [pid for pid in started if _running(pid)], "left running after Ctrl-C"
    finally:
        for pid in started:  # whatever the outcome, nothing of the test stays behind
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{site}/_stcore/health", timeout=2)
    # What was collected after the dashboards came up is in the database.
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT count(*) FROM ts.process_value WHERE ts > %s",
                           live_from).fetchone()
    assert row is not None and row[0] > 0
