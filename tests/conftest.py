"""Fixtures: the project's local TimescaleDB cluster and a fresh database per test.

The cluster is started by the project's own code (`LocalCluster.up`, as `mes db up` does).
Each test gets its own database, copied from a template migrated once per session, and
dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from mes import migrate
from mes.db import engine, session_factory
from mes.localdb import LocalCluster, create_database
from mes.settings import Settings, get_settings

# Fixtures several test packages share.
pytest_plugins = ("tests.transactional.fixtures",)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PLANT = REPO / "mes" / "samples" / "plant.toml"

AdminConnection = psycopg.Connection[tuple[object, ...]]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Tests choose their database explicitly; a developer's MES_DATABASE_URL never leaks in,
    and a login is kept per test, never in the developer's own session file."""
    monkeypatch.delenv("MES_DATABASE_URL", raising=False)
    monkeypatch.setenv("MES_SESSION_FILE", str(tmp_path / "mes-session"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def private_cluster(home: Path, database: str = "mes") -> Iterator[LocalCluster]:
    """A cluster of the test's own in `home`, on a free port, started; stopped and its
    server files removed when the block ends (for tests that stop a database)."""
    cluster = LocalCluster(home=home, requested_port=free_port(), database=database)
    cluster.up()
    try:
        yield cluster
    finally:
        engine(cluster.url()).dispose()
        cluster.remove()


@pytest.fixture(scope="session")
def cluster() -> LocalCluster:
    # The same cluster `./run test` starts: MES_HOME and MES_LOCAL_PORT apply, relative
    # folders taken from the repository's root.
    settings = Settings(database_url=None)
    if not settings.home.is_absolute():
        settings.home = REPO / settings.home
    local = LocalCluster.from_settings(settings)
    # Already up (`./run test` starts it first): parallel workers would otherwise all alter
    # the owner role at once, which PostgreSQL refuses ("tuple concurrently updated").
    if not local.is_running():
        local.up()
    return local


@pytest.fixture(scope="session")
def admin(cluster: LocalCluster) -> Iterator[AdminConnection]:
    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        yield conn


def _drop(admin: AdminConnection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_db(cluster: LocalCluster, admin: AdminConnection) -> Iterator[str]:
    name = f"mes_test_template_{uuid.uuid4().hex[:8]}"
    create_database(admin, name)
    url = cluster.url(name)
    migrate.upgrade(url)
    engine(url).dispose()
    # A template must have no sessions, TimescaleDB's background scheduler included.
    admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
        sql.Identifier(name)))
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                  (name,))
    yield name
    _drop(admin, name)


def fresh_database(cluster: LocalCluster, admin: AdminConnection,
                   template: str | None) -> Iterator[str]:
    """Owner URL of a new database (a copy of `template`), dropped when the caller is done."""
    name = f"mes_test_{uuid.uuid4().hex[:10]}"
    create_database(admin, name, template=template)
    url = cluster.url(name)
    try:
        yield url
    finally:
        engine(url).dispose()
        _drop(admin, name)


@pytest.fixture
def empty_db(cluster: LocalCluster, admin: AdminConnection) -> Iterator[str]:
    """Owner URL of a new database with TimescaleDB and no schema yet."""
    yield from fresh_database(cluster, admin, None)


@pytest.fixture
def db_url(cluster: LocalCluster, admin: AdminConnection, template_db: str) -> Iterator[str]:
    """Owner URL of a new database migrated to the newest revision."""
    yield from fresh_database(cluster, admin, template_db)


@pytest.fixture
def db_admin(cluster: LocalCluster, db_url: str) -> Iterator[AdminConnection]:
    """A superuser connection to the test database, for SET ROLE checks."""
    name = make_url(db_url).database
    assert name is not None
    with psycopg.connect(cluster.admin_url(name), autocommit=True) as conn:
        yield conn


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    with session_factory(db_url)() as session:
        yield session


@pytest.fixture
def use_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the `mes` command line at the test database."""
    monkeypatch.setenv("MES_DATABASE_URL", db_url)
    get_settings.cache_clear()
    return db_url


PASSWORD = "correct horse battery"
PIN = "2468"


def give_password(url: str, badge: str) -> None:
    """Set `badge`'s password (PASSWORD) and PIN, as administration does."""
    from transactional.audit import acting
    from transactional.identity import set_password

    with session_factory(url)() as opened, opened.begin():
        acting(opened, "mes-admin")
        set_password(opened, badge, PASSWORD, PIN)


@pytest.fixture
def log_in(use_database: str) -> Callable[..., None]:
    """`log_in(badge)`: give the person a password and log in at this test's terminal with
    `mes login BADGE --password-stdin`, as a scripted station would; later commands act
    as them. `pin=True` logs in with the PIN instead."""
    from typer.testing import CliRunner

    from mes.cli import app

    given: set[str] = set()

    def as_person(badge: str, *, pin: bool = False) -> None:
        if badge not in given:
            give_password(use_database, badge)
            given.add(badge)
        args = ["login", badge, "--password-stdin"] + (["--pin"] if pin else [])
        result = CliRunner().invoke(app, args, input=(PIN if pin else PASSWORD) + "\n")
        assert result.exit_code == 0, result.output

    return as_person
