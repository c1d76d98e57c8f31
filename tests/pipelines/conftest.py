"""Fixtures of the pipeline tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from psycopg import sql

from tests.conftest import AdminConnection


@pytest.fixture
def dagster_db(admin: AdminConnection) -> Iterator[str]:
    """Dagster's own database (its alembic must not meet the MES database's)."""
    name = f"dagster_test_{uuid.uuid4().hex[:8]}"
    admin.execute(sql.SQL("CREATE DATABASE {} OWNER mes_owner").format(sql.Identifier(name)))
    yield name
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(name)))
