"""The SQL of forwarding: reading a site's batches and position, writing the central store.

A batch is what became visible between two snapshots of the site database: rows whose
storing transaction is visible in the newer snapshot and was not in the older one. Rows
come out ordered by that transaction and their key, so reading a batch again (after a
crash) gives the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from ingest.sites.streams import ROW_TABLES

# Columns of each forwarded hypertable, as COPY sends them (the central tables take the
# same list; their site number comes from the transaction's mes_central.site_id).
ROW_COLUMNS: dict[str, tuple[str, ...]] = {
    "process_value": ("ts", "signal_id", "value", "quality"),
    "equipment_state": ("ts", "equipment_id", "state", "reason_code"),
    "production_count": ("ts", "equipment_id", "good", "reject"),
}
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "process_value": ("signal_id", "ts"),
    "equipment_state": ("equipment_id", "ts"),
    "production_count": ("equipment_id", "ts"),
}
assert set(ROW_COLUMNS) == set(ROW_TABLES)

# The transactional tables whose changes travel (site.outbox), by their central table.
FACT_TABLES = ("mes.equipment", "mes.signal", "mes.material_definition",
               "mes.product_definition", "mes.work_order", "mes.operation_run",
               "mes.material_lot", "mes.genealogy_link", "ts.collection_gap", "derived.kpi")

# A transaction is in the batch when the new snapshot sees it and the old one did not:
# started at or after the old snapshot's xmax, or in progress then.
_IN_BATCH = """
(xid >= pg_snapshot_xmax(%(published)s::pg_snapshot)
 OR xid = ANY(ARRAY(SELECT pg_snapshot_xip(%(published)s::pg_snapshot))))
AND xid < pg_snapshot_xmax(%(pending)s::pg_snapshot)
AND pg_visible_in_snapshot(xid, %(pending)s::pg_snapshot)
"""


def batch_rows_copy(table: str) -> sql.Composed:
    """COPY TO of one hypertable's rows in a batch, in a repeatable order."""
    columns = sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS[table]))
    order = sql.SQL(", ").join(map(sql.Identifier, ("xid", *ROW_KEYS[table])))
    return sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY {}) TO STDOUT (FORMAT BINARY)"
                   ).format(columns, sql.Identifier("ts", table), sql.SQL(_IN_BATCH), order)


BATCH_FACTS = f"""
SELECT table_name, operation, row_data::text FROM site.outbox
WHERE {_IN_BATCH}
ORDER BY id
"""


@dataclass(frozen=True)
class Position:
    published: str  # the snapshot everything before is published
    next_message: int
    pending: str | None  # the batch being published, if any
    pending_message_rows: int | None


_POSITION = """
SELECT published_snapshot::text, next_message, pending_snapshot::text, pending_message_rows
FROM site.forward_position WHERE site_code = %s
"""
# A new site starts before every transaction, so everything stored so far is forwarded.
_START = """
INSERT INTO site.forward_position (site_code, published_snapshot, next_message)
VALUES (%s, '1:1:', 1) ON CONFLICT DO NOTHING
"""
_NEW_BATCH = """
UPDATE site.forward_position
SET pending_snapshot = pg_current_snapshot(), pending_message_rows = %s, updated_at = now()
WHERE site_code = %s AND pending_snapshot IS NULL
"""
_PUBLISHED = """
UPDATE site.forward_position
SET published_snapshot = pending_snapshot, next_message = next_message + %s,
    pending_snapshot = NULL, pending_message_rows = NULL, updated_at = now()
WHERE site_code = %s AND pending_snapshot::text = %s
"""
# Outbox rows of transactions older than every one still running are all published.
_OUTBOX_DONE = """
DELETE FROM site.outbox WHERE xid < pg_snapshot_xmin(%s::pg_snapshot)
"""


def _existing_facts(table: str) -> sql.Composed:
    return sql.SQL("INSERT INTO site.outbox (table_name, operation, row_data) "
                   "SELECT {}, 'upsert', to_jsonb(t) FROM {} t").format(
        sql.Literal(table), sql.Identifier(*table.split(".")))


async def position(conn: AsyncConnection[Any], site: str) -> Position:
    async with conn.transaction():
        started = await conn.execute(_START, (site,))
        if started.rowcount == 1:
            # The first start: the fact tables as they are go first. SHARE mode waits for
            # the transactions changing them to end and holds off new ones until this
            # commits; from then on the triggers keep every change (see 0011_sites).
            await conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier(*t.split(".")) for t in FACT_TABLES)))
            for table in FACT_TABLES:
                await conn.execute(_existing_facts(table))
        cursor = await conn.execute(_POSITION, (site,))
        row = await cursor.fetchone()
    assert row is not None
    return Position(row[0], int(row[1]), row[2], row[3])


async def start_batch(conn: AsyncConnection[Any], site: str, message_rows: int) -> Position:
    """Fix the next batch at a new snapshot (committed before anything is published)."""
    async with conn.transaction():
        await conn.execute(_NEW_BATCH, (message_rows, site))
    return await position(conn, site)


async def batch_published(conn: AsyncConnection[Any], site: str, at: Position,
                          messages: int) -> None:
    """Record, after JetStream acknowledged every message, that the batch is published."""
    assert at.pending is not None
    async with conn.transaction():
        await conn.execute(_PUBLISHED, (messages, site, at.pending))
        await conn.execute(_OUTBOX_DONE, (at.pending,))


PLANT_SITES = "SELECT code FROM mes.equipment WHERE level = 'site' ORDER BY code"

FORWARD_STATUS = """
SELECT site_code, next_message - 1, pending_snapshot IS NOT NULL, updated_at
FROM site.forward_position ORDER BY site_code
"""

# --- central side ------------------------------------------------------------------------

REGISTER_SITE = """
INSERT INTO central.site (code) VALUES (%s) ON CONFLICT (code) DO NOTHING
"""
SITE_ID = "SELECT id FROM central.site WHERE code = %s"
LOCK_POSITION = """
INSERT INTO central.site_position (site_id, message) VALUES (%(site)s, 0)
ON CONFLICT (site_id) DO NOTHING;
"""
POSITION_FOR_UPDATE = """
SELECT message FROM central.site_position WHERE site_id = %s FOR UPDATE
"""
SET_POSITION = """
UPDATE central.site_position SET message = %s, stream_sequence = %s, applied_at = now()
WHERE site_id = %s
"""
SET_SITE = "SELECT set_config('mes_central.site_id', %s, true)"

CENTRAL_STATUS = """
SELECT s.code, p.message, p.stream_sequence, p.applied_at
FROM central.site s LEFT JOIN central.site_position p ON p.site_id = s.id
ORDER BY s.code
"""


def central_rows_copy(table: str) -> sql.Composed:
    columns = sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS[table]))
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier("central", table), columns)


def central_rows_staging(table: str) -> tuple[sql.Composed, sql.Composed, sql.Composed]:
    """Statements that store a message whose rows may partly be there already: a staging
    table, COPY into it, and the insert that skips stored rows."""
    staging = sql.Identifier(f"central_staging_{table}")
    columns = sql.SQL(", ").join(map(sql.Identifier, ROW_COLUMNS[table]))
    create = sql.SQL("CREATE TEMPORARY TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
                     "SELECT {} FROM {} WITH NO DATA").format(
        staging, columns, sql.Identifier("central", table))
    copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(staging, columns)
    insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
        sql.Identifier("central", table), columns, columns, staging)
    return create, copy, insert


_FACT_COLUMNS = """
SELECT a.attname, coalesce(a.attnum = ANY(i.indkey::int2[]), false)
FROM pg_attribute a
LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class FactTable:
    """How one site table's changes are applied to its central copy."""

    source: str  # schema.table at the site
    columns: tuple[str, ...]  # of the central table, site_id first
    key: tuple[str, ...]  # the site's key columns (without site_id)

    @property
    def central(self) -> sql.Identifier:
        return sql.Identifier("central", self.source.split(".")[1])

    def upsert(self) -> sql.Composed:
        # The site's row type reads the JSON (the central database has the same schema).
        data = [c for c in self.columns if c != "site_id"]
        names = sql.SQL(", ").join(map(sql.Identifier, self.columns))
        picked = sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in data)
        changed = [c for c in data if c not in self.key]
        action = sql.SQL("DO NOTHING") if not changed else sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                               for c in changed))
        return sql.SQL(
            "INSERT INTO {} ({}) SELECT %(site)s, {} FROM jsonb_populate_recordset("
            "NULL::{}, %(rows)s::jsonb) r ON CONFLICT (site_id, {}) {}").format(
            self.central, names, picked, sql.Identifier(*self.source.split(".")),
            sql.SQL(", ").join(map(sql.Identifier, self.key)), action)

    def delete(self) -> sql.Composed:
        matches = sql.SQL(" AND ").join(
            sql.SQL("c.{0} = r.{0}").format(sql.Identifier(c)) for c in self.key)
        return sql.SQL(
            "DELETE FROM {} c USING jsonb_populate_recordset(NULL::{}, %(rows)s::jsonb) r "
            "WHERE c.site_id = %(site)s AND {}").format(
            self.central, sql.Identifier(*self.source.split(".")), matches)


async def fact_tables(conn: AsyncConnection[Any]) -> dict[str, FactTable]:
    tables = {}
    for source in FACT_TABLES:
        central = "central." + source.split(".")[1]
        cursor = await conn.execute(_FACT_COLUMNS, (central,))
        rows = await cursor.fetchall()
        tables[source] = FactTable(source, tuple(r[0] for r in rows),
                                   tuple(r[0] for r in rows if r[1] and r[0] != "site_id"))
    return tables
