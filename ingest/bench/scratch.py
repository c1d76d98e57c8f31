"""A throwaway database for the benchmarks, on the project's local cluster.

It is created and migrated at the start, loaded with a plant when asked, and dropped at
the end whatever happens. External servers are refused: the ceiling measurement has the
server itself read a file, which needs the local cluster's superuser and file system.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from mes import migrate
from mes.db import engine, session_factory
from mes.localdb import LocalCluster, create_database
from mes.settings import get_settings
from transactional.plant import load_plant
from transactional.plant_file import PlantDefinition


class BenchError(RuntimeError):
    """The benchmark cannot run or a measurement went wrong; the message says which."""


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str         # the owner role, as the collectors and migrations use it
    admin_url: str   # the superuser, for server-side COPY, TRUNCATE and CHECKPOINT


def local_cluster() -> LocalCluster:
    """The running local cluster; BenchError when the bench cannot use it."""
    settings = get_settings()
    if settings.database_url:
        raise BenchError(
            "the ingest bench needs the project's local database cluster: it has the server "
            "load a file from this machine as the superuser, which an external server "
            "(MES_DATABASE_URL) does not allow. Unset MES_DATABASE_URL and start the local "
            "cluster with `mes db up`.")
    cluster = LocalCluster.from_settings(settings)
    if not cluster.is_running():
        raise BenchError(f"the local database cluster in {cluster.home} is not running: "
                         "start it with `mes db up`")
    return cluster


@contextlib.contextmanager
def scratch_database(cluster: LocalCluster, plant: PlantDefinition | None = None,
                     ) -> Iterator[ScratchDatabase]:
    """A new migrated database `mes_bench_<random>`, dropped when the block ends."""
    name = f"mes_bench_{secrets.token_hex(5)}"
    url = cluster.url(name)
    try:
        with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
            create_database(admin, name)
        migrate.upgrade(url)
        if plant is not None:
            with session_factory(url)() as session, session.begin():
                load_plant(session, plant, source="ingest bench")
        engine(url).dispose()
        yield ScratchDatabase(name, url, cluster.admin_url(name))
    finally:
        engine(url).dispose()
        with psycopg.connect(cluster.admin_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
