"""Runs the Alembic migrations in `sql/` against a database, after checking TimescaleDB.

It refuses to migrate a database without the timescaledb extension, and reports which
edition is there: community-only features are switched on by the migrations themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from mes.db import engine
from sql import SQL_DIR
from transactional.errors import MesError

MIN_TIMESCALEDB = (2, 13)


class MigrationError(MesError):
    """The database cannot be migrated as it is."""


@dataclass(frozen=True)
class TimescaleInfo:
    version: str
    edition: str  # "apache" (Apache-2 only) or "timescale" (community features present)

    @property
    def community(self) -> bool:
        return self.edition == "timescale"


def timescale_info(conn: Connection) -> TimescaleInfo:
    """Version and edition of TimescaleDB in this database; MigrationError when it is absent."""
    version = conn.execute(
        text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    ).scalar()
    if version is None:
        available = conn.execute(
            text("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).scalar()
        database = conn.execute(text("SELECT current_database()")).scalar()
        if available is None:
            raise MigrationError(
                f"database {database!r}: the server has no TimescaleDB extension installed. "
                "Use `mes db up` for a local server, or a PostgreSQL with TimescaleDB."
            )
        raise MigrationError(
            f"database {database!r}: the timescaledb extension is installed on the server but "
            "not created in this database; a superuser must run `CREATE EXTENSION timescaledb;` "
            "there (and have shared_preload_libraries = 'timescaledb')."
        )
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < MIN_TIMESCALEDB:
        raise MigrationError(
            f"TimescaleDB {version} is too old; {'.'.join(map(str, MIN_TIMESCALEDB))} or newer "
            "is needed"
        )
    license_ = conn.execute(text("SELECT current_setting('timescaledb.license', true)")).scalar()
    return TimescaleInfo(version=version,
                         edition="timescale" if license_ == "timescale" else "apache")


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SQL_DIR))
    config.attributes["connection"] = conn
    return config


def _lock(conn: Connection) -> None:
    # Two `mes db up` at once would both see "no revision" and race; the second waits.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('mes.migrate'))"))


def upgrade(url: str, revision: str = "head") -> TimescaleInfo:
    with engine(url).begin() as conn:
        _lock(conn)
        info = timescale_info(conn)
        command.upgrade(_config(conn), revision)
    return info


def downgrade(url: str, revision: str) -> None:
    with engine(url).begin() as conn:
        _lock(conn)
        command.downgrade(_config(conn), revision)


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision among the migrations in `sql/`."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head
