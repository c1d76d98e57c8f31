"""Throwaway databases on the project's local cluster, for the benchmarks.

A scratch database is created and migrated when its block starts and dropped when it ends,
whatever happens. External servers are refused: the benchmarks need the local cluster's
superuser (server-side COPY of a file, bulk loads with triggers off).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from mes import migrate
from mes.db import engine
from mes.localdb import LocalCluster, create_database
from mes.settings import get_settings


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str         # the owner role, as the collectors and migrations use it
    admin_url: str   # the superuser, for server-side COPY, TRUNCATE and CHECKPOINT


def running_local_cluster(bench: str, needs: str,
                          error: Callable[[str], Exception]) -> LocalCluster:
    """The running local cluster; `error(message)` is raised when `bench` cannot use it
    (`needs` says what it does that an external server does not allow)."""
    settings = get_settings()
    if settings.database_url:
        raise error(
            f"the {bench} needs the project's local database cluster: {needs}, which an "
            "external server (MES_DATABASE_URL) does not allow. Unset MES_DATABASE_URL and "
            "start the local cluster with `mes db up`.")
    cluster = LocalCluster.from_settings(settings)
    if not cluster.is_running():
        raise error(f"the local database cluster in {cluster.home} is not running: start it "
                    "with `mes db up`")
    return cluster


@contextlib.contextmanager
def scratch_database(cluster: LocalCluster, prefix: str) -> Iterator[ScratchDatabase]:
    """A new migrated database `<prefix>_<random>`, dropped when the block ends."""
    name = f"{prefix}_{secrets.token_hex(5)}"
    url = cluster.url(name)
    try:
        with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
            create_database(admin, name)
        migrate.upgrade(url)
        engine(url).dispose()
        yield ScratchDatabase(name, url, cluster.admin_url(name))
    finally:
        engine(url).dispose()
        with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
