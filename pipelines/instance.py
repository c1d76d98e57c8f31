"""Dagster's own storage: a database `dagster` beside the MES database on the same server,
and the environment `dagster dev` needs to find it (dagster_home/dagster.yaml)."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from mes.db import psycopg_url

DAGSTER_DATABASE = "dagster"
DAGSTER_HOME = Path(__file__).resolve().parent.parent / "dagster_home"


def ensure_dagster_database(url: str) -> str:
    """Create the `dagster` database on the server of `url` unless it exists; returns its
    URL. The MES database's owner must be allowed to create databases."""
    target = make_url(psycopg_url(url)).set(database=DAGSTER_DATABASE)
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DAGSTER_DATABASE,)).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DAGSTER_DATABASE)))
    return target.render_as_string(hide_password=False)


def dagster_environment(url: str) -> dict[str, str]:
    """DAGSTER_HOME and the storage variables dagster.yaml reads, for the server of `url`."""
    parsed = make_url(psycopg_url(url))
    return {
        "DAGSTER_HOME": str(DAGSTER_HOME),
        "MES_DAGSTER_PG_USER": parsed.username or "",
        "MES_DAGSTER_PG_PASSWORD": parsed.password or "",
        "MES_DAGSTER_PG_HOST": parsed.host or "localhost",
        "MES_DAGSTER_PG_PORT": str(parsed.port or 5432),
        "MES_DAGSTER_PG_DB": DAGSTER_DATABASE,
    }
