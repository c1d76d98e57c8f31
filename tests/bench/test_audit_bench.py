"""`mes bench audit`: one short run reports audited and unaudited tx/s at 1, 4 and 16
clients, seals everything it wrote, and leaves no scratch database behind."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from mes.cli import app
from mes.localdb import LocalCluster

AdminConnection = psycopg.Connection[tuple[object, ...]]


@pytest.mark.slow
def test_a_short_audit_bench(cluster: LocalCluster, admin: AdminConnection) -> None:
    result = CliRunner().invoke(app, ["bench", "audit", "--seconds", "1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert [p["clients"] for p in figures["points"]] == [1, 4, 16]
    assert all(p["audited"] > 0 and p["unaudited"] > 0 for p in figures["points"])
    assert figures["unsealed"] == 0 and figures["audit_records"] > 0
    left = admin.execute("SELECT count(*) FROM pg_database "
                         "WHERE datname LIKE 'mes_bench_audit_%'").fetchone()
    assert left == (0,)
