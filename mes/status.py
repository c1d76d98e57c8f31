"""What a database holds, for `mes db status`: equipment by level, signals, hypertables.

Read-only queries; the command line formats them. Schema version and TimescaleDB edition
come from `mes.migrate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Hypertable:
    name: str
    chunks: int
    size: str  # as pg_size_pretty writes it


@dataclass(frozen=True)
class Contents:
    equipment: list[tuple[str, int]]  # (level, count), by level
    signals: int
    hypertables: list[Hypertable]


def contents(conn: Connection) -> Contents:
    equipment = [(str(level), int(count)) for level, count in conn.execute(text(
        "SELECT level, count(*) FROM mes.equipment GROUP BY level ORDER BY level"))]
    signals = conn.execute(text("SELECT count(*) FROM mes.signal")).scalar_one()
    hypertables = [Hypertable(name, chunks, size) for name, chunks, size in conn.execute(text(
        "SELECT format('%I.%I', hypertable_schema, hypertable_name), num_chunks, "
        "pg_size_pretty(hypertable_size(format('%I.%I', hypertable_schema, "
        "hypertable_name)::regclass)) FROM timescaledb_information.hypertables "
        "ORDER BY 1"))]
    return Contents(equipment, int(signals), hypertables)
