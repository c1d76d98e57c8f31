"""`mes collect` as a process: a clean stop flushes everything, a crash is recovered from
the spool on the next start, and a bad tag map stops it before it collects anything."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ingest.collect import CollectError, CollectorFiles, plant_signals
from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from ingest.spool import Spool
from mes.cli import app
from tests.ingest.collecting import (
    collector_status,
    eventually,
    in_event_loop,
    load_sample_plant,
    start_collect,
)

pytestmark = pytest.mark.slow



def _dead_url(url: str) -> str:
    """The same database on a port nothing listens on: an unreachable server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return re.sub(r":\d+/", f":{port}/", url, count=1)




async def _finish(process: asyncio.subprocess.Process, how: signal.Signals) -> str:
    process.send_signal(how)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    return stderr.decode()


@in_event_loop
async def test_clean_stop_flushes_everything_and_a_crash_is_recovered_from_the_spool(
        db_url: str, tmp_path: Path) -> None:
    plant, _ = load_sample_plant(db_url)
    directory = tmp_path / "collect"
    async with Simulator(plant, seed=2, speed=5, opcua_port=0, modbus_port=None) as simulator:
        assert simulator.opcua_port is not None
        tag_map = tmp_path / "tags.toml"
        tag_map.write_text(simulator_tag_map(plant, opcua_port=simulator.opcua_port,
                                             protocols=("opcua",)))

        # 1. Collect, then SIGTERM: everything received is stored before the exit.
        process = await start_collect(tag_map, directory, db_url)
        await eventually(lambda: collector_status(directory).get("rows_written", 0) > 500, 30,
                         "rows written")
        log = await _finish(process, signal.SIGTERM)
        assert process.returncode == 0, log
        final = collector_status(directory)
        assert final["queue_depth"] == 0 and final["spool_rows"] == 0
        assert final["samples_dropped"] == 0
        assert final["samples_received"] == final["rows_written"] + final["samples_filtered"]
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT count(*) FROM ts.process_value").fetchone()
        assert stored is not None
        assert stored[0] + _counted_rows(db_url) == final["rows_written"]
        shown = CliRunner().invoke(app, ["collect", "status", "--dir", str(directory)])
        assert shown.exit_code == 0
        assert f"written {final['rows_written']}, filtered {final['samples_filtered']}" in (
            shown.output)
        assert "stopped" in shown.output.splitlines()[0]
        assert "database: connected" in shown.output
        assert "source simulator-opcua: stopped" in shown.output

        # 2. The database is unreachable: the tag map is checked against the saved signal
        #    map, batches go to the spool; then the collector is killed.
        process = await start_collect(tag_map, directory, _dead_url(db_url))
        await eventually(lambda: collector_status(directory).get("spool_rows", 0) > 500, 30,
                         "rows spooled")
        log = await _finish(process, signal.SIGKILL)
        assert "checking the tag map against the signal map saved" in log
        spool = Spool(directory / "spool", 1 << 30)
        spooled = [batch.rows for batch in spool.batches_in_order()]
        spooled_rows = sum(len(rows) for rows in spooled)
        assert spooled_rows == spool.rows > 500

        # 3. The next start with the database back says what it recovered and stores it.
        process = await start_collect(tag_map, directory, db_url)
        await eventually(
            lambda: collector_status(directory).get("rows_recovered", 0) >= spooled_rows
            and collector_status(directory).get("spool_rows") == 0, 30, "spool replayed")
        log = await _finish(process, signal.SIGTERM)
        assert process.returncode == 0, log
        assert (f"{spooled_rows} rows in {len(spooled)} batches recovered from the spool"
                in log)
    with psycopg.connect(db_url) as conn:
        stored_keys = set(conn.execute("SELECT signal_id, ts FROM ts.process_value").fetchall())
    missing = [(row[1], row[0]) for rows in spooled for row in rows.process_value
               if (row[1], row[0]) not in stored_keys]
    assert missing == []


def _counted_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM ts.equipment_state) "
                           "+ (SELECT count(*) FROM ts.production_count)").fetchone()
    assert row is not None
    return int(row[0])


def test_a_bad_tag_map_stops_mes_collect_before_it_starts(use_database: str,
                                                           tmp_path: Path) -> None:
    load_sample_plant(use_database)
    tag_map = tmp_path / "tags.toml"
    tag_map.write_text("""
[[modbus]]
name = "press"
host = "127.0.0.1"
registers = [
  { signal = "PRESS-9.temperature", address = 0, type = "float32" },
  { signal = "PRESS-1.good", address = 2, type = "float32" },
]
""")
    result = CliRunner().invoke(app, ["collect", "--tag-map", str(tag_map),
                                      "--dir", str(tmp_path / "collect")])
    assert result.exit_code == 1
    assert "tag map rejected, the collector did not start" in result.output
    assert "unknown signal 'PRESS-9.temperature'" in result.output
    assert "'PRESS-1.good' is a counter; read it as uint16 or uint32, not float32" in (
        result.output)
    assert not (tmp_path / "collect" / "status.json").exists()


def test_collect_status_without_a_status_file_says_so(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["collect", "status", "--dir", str(tmp_path)])
    assert missing.exit_code == 1
    assert "no status in" in missing.output


def test_a_login_that_may_not_act_as_the_ingest_role_is_refused_at_start(
        db_url: str, db_admin: psycopg.Connection[tuple[object, ...]], tmp_path: Path) -> None:
    login = f"mes_test_login_{os.getpid()}"
    db_admin.execute(f"CREATE ROLE {login} LOGIN PASSWORD 'secret-for-test'")
    try:
        db_admin.execute(f"GRANT SELECT ON ingest_api.signal_map TO {login}")
        db_admin.execute(f"GRANT USAGE ON SCHEMA ingest_api TO {login}")
        url = re.sub(r"//[^@]+@", f"//{login}:secret-for-test@", db_url)
        with pytest.raises(CollectError) as refused:
            plant_signals(url, CollectorFiles(tmp_path), role="mes_ingest")
        assert (f"the database login '{login}' may not act as 'mes_ingest', which the "
                f"collector writes as: GRANT mes_ingest TO {login}") in str(refused.value)
        assert not (tmp_path / "signal_map.json").exists()
    finally:
        db_admin.execute(f"REVOKE ALL ON ingest_api.signal_map FROM {login}")
        db_admin.execute(f"REVOKE ALL ON SCHEMA ingest_api FROM {login}")
        db_admin.execute(f"DROP ROLE {login}")


def test_collect_status_answers_without_loading_the_database_or_protocol_libraries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "status.json").write_text(json.dumps({
        "at": 0, "pid": 1, "started_at": 0, "samples_received": 0, "rows_written": 0,
        "samples_filtered": 0, "samples_dropped": 0, "queue_depth": 0, "spool_rows": 0,
        "spool_bytes": 0, "rows_recovered": 0, "last_flush_rows": 0, "database": "connected",
        "sources": {}}))
    probe = ("import sys, time; started = time.perf_counter(); "
             "sys.argv = ['mes', 'collect', 'status', '--dir', sys.argv[1]]; "
             "from mes.cli import app\n"
             "try:\n    app()\nexcept SystemExit:\n    pass\n"
             "print('took', time.perf_counter() - started)\n"
             "print('loaded', sorted({m.split('.')[0] for m in sys.modules} & "
             "{'asyncua', 'pymodbus', 'sqlalchemy', 'psycopg', 'alembic', 'transactional'}))")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                            text=True, check=True)
    assert "database: connected" in result.stdout
    assert "loaded []" in result.stdout
    with capsys.disabled():
        print(f"\nmes collect status in-process {result.stdout.split('took')[1].split()[0]} s")
