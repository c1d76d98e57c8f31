"""A throwaway database for the benchmarks, on the project's local cluster.

It is created and migrated at the start, loaded with a plant when asked, and dropped at
the end whatever happens. External servers are refused: the ceiling measurement has the
server itself read a file, which needs the local cluster's superuser and file system.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from bench.scratch import ScratchDatabase, running_local_cluster
from bench.scratch import scratch_database as shared_scratch_database
from mes.db import engine, session_factory
from mes.localdb import LocalCluster
from transactional.audit import acting
from transactional.errors import MesError
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import PlantDefinition

__all__ = ["BenchError", "ScratchDatabase", "local_cluster", "scratch_database"]


class BenchError(MesError):
    """The benchmark cannot run or a measurement went wrong; the message says which."""


def local_cluster() -> LocalCluster:
    """The running local cluster; BenchError when the bench cannot use it."""
    return running_local_cluster(
        "ingest bench", "it has the server load a file from this machine as the superuser",
        BenchError)


@contextlib.contextmanager
def scratch_database(cluster: LocalCluster, plant: PlantDefinition | None = None,
                     ) -> Iterator[ScratchDatabase]:
    """A new migrated database `mes_bench_<random>` with `plant` loaded, dropped when the
    block ends."""
    with shared_scratch_database(cluster, "mes_bench") as database:
        if plant is not None:
            with session_factory(database.url)() as session, session.begin():
                acting(session, ADMINISTRATION)
                load_plant(session, plant, source="ingest bench")
            engine(database.url).dispose()
        yield database
