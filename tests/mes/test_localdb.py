"""The local cluster's lifecycle, and the `mes db` / `mes demo` commands on real databases."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from mes import migrate
from mes.cli import app
from mes.db import as_role, connection_pool, engine
from mes.localdb import LocalCluster, UnsupportedSystemError, install_postgres
from tests.conftest import free_port


@pytest.fixture
def scratch_cluster() -> Iterator[LocalCluster]:
    # Not pytest's tmp_path: the postgres user must be able to enter the folder.
    home = Path(tempfile.mkdtemp(prefix="mes-cluster-", dir="/tmp"))
    home.chmod(0o755)
    cluster = LocalCluster(home=home / ".mes", requested_port=free_port(), database="mes")
    try:
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(home)


@pytest.mark.slow
def test_cluster_up_is_idempotent_and_keeps_data_across_restarts(
        scratch_cluster: LocalCluster) -> None:
    scratch_cluster.up()
    assert scratch_cluster.is_running()
    url = scratch_cluster.url()
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'timescaledb'")
        assert row.fetchone() == ("timescaledb",)
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    scratch_cluster.up()  # a second `db up` changes nothing
    assert scratch_cluster.url() == url
    # The server log holds statements and row data.
    assert scratch_cluster.log_file.stat().st_mode & 0o777 == 0o600

    assert scratch_cluster.down() is True
    assert not scratch_cluster.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    assert scratch_cluster.down() is False

    scratch_cluster.up()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)


def test_unsupported_system_says_how_to_use_an_existing_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=fedora\nVERSION_ID="41"\nPRETTY_NAME="Fedora Linux 41"\n')
    monkeypatch.setenv("MES_OS_RELEASE_FILE", str(os_release))
    with pytest.raises(UnsupportedSystemError) as caught:
        install_postgres()
    message = str(caught.value)
    assert "Fedora Linux 41" in message
    assert "MES_DATABASE_URL=postgresql://" in message


def test_db_up_on_an_external_server_only_migrates(empty_db: str) -> None:
    result = CliRunner().invoke(app, ["db", "up"], env={"MES_DATABASE_URL": empty_db})
    assert result.exit_code == 0, result.output
    assert "starting the local" not in result.output
    password = make_url(empty_db).password
    assert password and password not in result.output
    assert "database ready: postgresql://mes_owner:***@127.0.0.1" in result.output
    assert "edition" in result.output
    with engine(empty_db).connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


def test_db_status_reports_what_is_there(db_url: str) -> None:
    result = CliRunner().invoke(app, ["db", "status"], env={"MES_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert f"schema revision: {migrate.head_revision()}" in result.output
    assert "hypertable ts.process_value: 0 chunks" in result.output
    assert "***" in result.output and "@127.0.0.1" in result.output  # password hidden


@pytest.mark.slow
def test_demo_migrates_loads_the_sample_plant_and_shows_data_arriving(
        empty_db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MES_DATABASE_URL": empty_db, "MES_COLLECT_DIR": str(tmp_path)}
    result = runner.invoke(app, ["demo", "--seconds", "3"], env=env)
    assert result.exit_code == 0, result.output
    assert "sample plant" in result.output and "loaded" in result.output
    assert "work_unit: 8" in result.output
    assert "psql 'postgresql://mes_owner:***@127.0.0.1" in result.output
    password = make_url(empty_db).password
    assert password and password not in result.output
    with engine(empty_db).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mes.signal")).scalar_one() == 48
        # The simulator and both collectors ran: every machine sent data.
        machines = conn.execute(text(
            "SELECT count(DISTINCT s.equipment_id) FROM ts.process_value p "
            "JOIN mes.signal s ON s.id = p.signal_id")).scalar_one()
        opcua, modbus = conn.execute(text(
            "SELECT count(*) FILTER (WHERE e.parent_id = l1.id), "
            "       count(*) FILTER (WHERE e.parent_id <> l1.id) "
            "FROM ts.equipment_state s JOIN mes.equipment e ON e.id = s.equipment_id, "
            "     mes.equipment l1 WHERE l1.code = 'L1'")).one()
    assert machines == 8
    assert "sample ERP orders (B2MML)" in result.output and "3 created" in result.output
    with engine(empty_db).connect() as conn:
        orders = conn.execute(text("SELECT code, status FROM mes.work_order ORDER BY code"))
        assert orders.all() == [("4711", "in_progress"), ("4712", "in_progress"),
                                ("4713", "created")]
        # The sample shift: a lot stamped and being painted, one on hold after a bad hole.
        lots = conn.execute(text("SELECT code, status FROM mes.material_lot ORDER BY code"))
        assert lots.all() == [("COIL-0001", "available"), ("RAW-4711-1", "available"),
                              ("RAW-4712-1", "on_hold")]
        assert conn.execute(text("SELECT count(*) FROM mes.nonconformance "
                                 "WHERE status = 'open'")).scalar_one() == 1
    assert "RAW-4712-1 on hold" in result.output
    assert opcua >= 4 and modbus >= 4
    table = result.output[result.output.index("machine    state now"):
                          result.output.index("\nderived ")]
    assert len([line for line in table.splitlines() if line.startswith(("PRESS", "PACK"))]) == 3
    # Then today's partition is derived from what arrived, and each machine's day shown.
    kpis = result.output[result.output.index("today's KPIs"):]
    assert "machine_time" in result.output[result.output.index("\nderived "):]
    assert len([line for line in kpis.splitlines() if line.startswith(("PRESS", "PACK"))]) == 3
    # Then the dashboards served, with Dagster's command beside them; both stopped at the end.
    [site] = re.findall(r"dashboards at (http://127\.0\.0\.1:\d+)", result.output)
    assert "dagster dev -m pipelines.definitions" in result.output
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{site}/_stcore/health", timeout=2)

    again = runner.invoke(app, ["demo", "--seconds", "0"], env=env)
    assert "0 created, 0 updated, 3 unchanged" in again.output
    assert again.exit_code == 0, again.output
    assert "already loaded" in again.output
    assert "sample shift: already worked" in again.output


def test_migrate_command_refuses_without_the_extension(
        empty_db: str, cluster: LocalCluster) -> None:
    with psycopg.connect(cluster.admin_url(make_url(empty_db).database or ""),
                         autocommit=True) as admin:
        admin.execute("DROP EXTENSION timescaledb")
    result = CliRunner().invoke(app, ["db", "migrate"], env={"MES_DATABASE_URL": empty_db})
    assert result.exit_code == 1
    assert "CREATE EXTENSION timescaledb" in result.output


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
@pytest.mark.slow
def test_cluster_files_move_where_postgres_can_enter() -> None:
    """A clone under a folder the postgres user cannot enter (like /root) still gets a cluster."""
    private = Path(tempfile.mkdtemp(prefix="mes-private-", dir="/tmp"))
    private.chmod(0o700)
    cluster = LocalCluster(home=private / ".mes", requested_port=free_port(), database="mes")
    try:
        assert cluster.server_dir != cluster.home
        assert cluster.server_dir.parent == Path("/var/lib/postgresql/mes-clusters")
        cluster.up()
        with psycopg.connect(cluster.url()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        cluster.remove()
        shutil.rmtree(private)


def test_connection_pool_serves_the_database(db_url: str) -> None:
    with connection_pool(db_url) as pool, pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM mes.sample_quality").fetchone()
    assert row is not None and row[0] > 0


def test_a_url_as_the_application_role_reads_with_its_rights_only(db_url: str) -> None:
    """`as_role`: both drivers act as the role from the start, keeping the URL's own
    options; what only the owner may do is refused."""
    from pipelines import queries

    url = as_role(f"{db_url}?options=-c%20statement_timeout%3D30000", "mes_app")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_user, current_setting('statement_timeout')"
                            ).fetchone() == ("mes_app", "30s")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM derived.kpi")
    with queries.connect(url) as adbc:
        assert queries.frame(adbc, "SELECT current_user AS who")["who"].to_list() == ["mes_app"]
