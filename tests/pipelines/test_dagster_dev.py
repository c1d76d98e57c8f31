"""`dagster dev` starts with the project's dagster.yaml (storage in PostgreSQL), answers,
and stops cleanly, leaving no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.instance import DAGSTER_HOME, dagster_environment
from tests.conftest import free_port


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _answer_ctrl_c() -> None:
    # A test run started in the background (`./run test &`, a CI runner) inherits SIGINT
    # ignored, and Python then keeps ignoring it: dagster dev would never stop on Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_dagster_dev_starts_answers_and_stops(db_url: str, dagster_db: str,
                                              tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_HOME / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, **dagster_environment(db_url), "DAGSTER_HOME": str(home),
           "MES_DAGSTER_PG_DB": dagster_db, "MES_DATABASE_URL": db_url}
    port = free_port()
    dagster = Path(sys.executable).parent / "dagster"
    process = subprocess.Popen(
        [str(dagster), "dev", "-m", "pipelines.definitions", "-h", "127.0.0.1", "-p",
         str(port)], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "dagster.log").open("w"), start_new_session=True,
        preexec_fn=_answer_ctrl_c)
    try:
        deadline = time.monotonic() + 120
        answer = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info",
                                            timeout=2) as response:
                    answer = response.read().decode()
                    break
            except OSError:
                time.sleep(1)
        log = (tmp_path / "dagster.log").read_text()
        assert answer is not None, f"dagster dev did not answer:\n{log[-3000:]}"
        assert "dagster_webserver_version" in answer
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/graphql?query="
                                    "%7BassetNodes%7BassetKey%7Bpath%7D%7D%7D",
                                    timeout=30) as response:
            assert b"machine_time" in response.read()
    finally:
        # dagster dev ignores SIGTERM alone; SIGINT to the whole group stops it and its
        # code server and daemon.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail("dagster dev did not stop on SIGINT within 60 s")
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _group_alive(process.pid), "dagster dev left processes behind"
