"""Fixtures of the site tests: a NATS server with JetStream, and site and central databases
(each a fresh database from the migrated template, on the tests' cluster)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mes.localdb import LocalCluster
from mes.natsd import LocalNats
from tests.conftest import AdminConnection, fresh_database


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[LocalNats]:
    with LocalNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def databases(cluster: LocalCluster, admin: AdminConnection,
              template_db: str) -> Iterator[Callable[[], str]]:
    """`databases()`: the owner URL of one more fresh migrated database."""
    with contextlib.ExitStack() as stack:
        def another() -> str:
            return stack.enter_context(contextlib.contextmanager(fresh_database)(
                cluster, admin, template_db))
        yield another
