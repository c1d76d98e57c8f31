"""`mes demo` without --seconds, as `./run demo` runs it: it serves the dashboards and goes
on collecting until Ctrl-C, then stops at once, with exit code 0, leaving no process behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

# From Ctrl-C to the last process gone: the collectors flush, Streamlit stops on SIGTERM.
PROMPTLY = 20.0


def _answer_ctrl_c() -> None:
    # A test run started in the background (`./run test &`, a CI runner) inherits SIGINT
    # ignored, and Python then keeps ignoring it: the demo would never see the Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process's output, line by line, read on a thread so that waiting has a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _wait_for(process: subprocess.Popen[str], lines: queue.Queue[str], pattern: str,
              seen: list[str], timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line like {pattern!r} within {timeout:g} s (exit code "
                         f"{process.poll()}):\n{''.join(seen)}")


@pytest.mark.slow
def test_demo_serves_until_ctrl_c_then_stops_everything_it_started(
        empty_db: str, tmp_path: Path) -> None:
    env = {**os.environ, "MES_DATABASE_URL": empty_db, "MES_COLLECT_DIR": str(tmp_path),
           "MES_SESSION_FILE": str(tmp_path / "session")}
    demo = subprocess.Popen(
        [str(Path(sys.executable).with_name("mes")), "demo", "--port", "0"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Its own process group, as a terminal's foreground job: Ctrl-C goes to the group.
        start_new_session=True, preexec_fn=_answer_ctrl_c)
    lines, seen = _lines(demo), list[str]()
    started: set[int] = set()
    try:
        site = _wait_for(demo, lines, r"dashboards at (http://127\.0\.0\.1:\d+)", seen, 180)[1]
        _wait_for(demo, lines, r"collecting live until Ctrl-C", seen, 30)
        with urllib.request.urlopen(f"{site}/_stcore/health", timeout=10) as health:
            assert health.status == 200
        with urllib.request.urlopen(site, timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        started = _descendants(demo.pid)
        assert started, "the dashboards run as a child process"
        with psycopg.connect(empty_db) as conn:
            live_from = conn.execute("SELECT now()").fetchone()
        _wait_for(demo, lines, r"^\s+\d+ s\s+received", seen, 30)  # collecting goes on

        os.killpg(demo.pid, signal.SIGINT)
        clock = time.monotonic()
        try:
            code = demo.wait(timeout=PROMPTLY)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {PROMPTLY:g} s after Ctrl-C:\n{''.join(seen)}")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for pid in started:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    while time.monotonic() - clock < PROMPTLY and any(_running(pid) for pid in started):
        time.sleep(0.2)
    output = "".join(seen) + "".join(lines.queue)
    assert code == 0, output
    assert "stopping" in output and "Traceback" not in output
    assert not [pid for pid in started if _running(pid)], "left running after Ctrl-C"
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{site}/_stcore/health", timeout=2)
    # What was collected after the dashboards came up is in the database.
    with psycopg.connect(empty_db) as conn:
        row = conn.execute("SELECT count(*) FROM ts.process_value WHERE ts > %s",
                           live_from).fetchone()
    assert row is not None and row[0] > 0
