"""The ingest path's SQL: the signal map collectors resolve tags against, and batch writes.

A batch goes to the hypertables in one transaction with binary COPY. A batch that may
already be partly stored (a replay after a lost commit acknowledgement) goes through
temporary tables and `INSERT ... ON CONFLICT DO NOTHING`, so it is stored exactly once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from ingest.conditioning import ProcessValueRow, Rows
from ingest.tagmap import PlantSignal

SIGNAL_MAP = """
SELECT signal_id, signal_code, kind, equipment_id, equipment_code, low_limit, high_limit,
       ideal_cycle_seconds, state_codes
FROM ingest_api.signal_map
"""

# table -> (columns, PostgreSQL types for binary COPY), in Rows' tuple order.
COPY_LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "process_value": (("ts", "signal_id", "value", "quality"),
                      ("timestamptz", "int4", "float8", "int2")),
    "equipment_state": (("ts", "equipment_id", "state", "reason_code"),
                        ("timestamptz", "int4", "int4", "int4")),
    "production_count": (("ts", "equipment_id", "good", "reject"),
                         ("timestamptz", "int4", "int4", "int4")),
}


_TARGET = {table: sql.Identifier("ts", table) for table in COPY_LAYOUT}


def act_as(conn: psycopg.Connection[Any], role: str | None) -> None:
    """Act as `role` for the rest of the session (the login must be a member of it)."""
    if role is not None:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        conn.commit()


def load_signal_map(conn: psycopg.Connection[Any]) -> dict[str, PlantSignal]:
    with conn.cursor() as cur:
        cur.execute(SIGNAL_MAP)
        return {row[1]: PlantSignal(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                                    row[7], None if row[8] is None else tuple(row[8]))
                for row in cur.fetchall()}


def _copy(cur: psycopg.Cursor[Any], target: sql.Composable, table: str,
          batch: Iterable[Any]) -> None:
    columns, types = COPY_LAYOUT[table]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with cur.copy(statement) as copy:
        copy.set_types(list(types))
        for row in batch:
            copy.write_row(row)


def write_rows(conn: psycopg.Connection[Any], rows: Rows,
               process_values: Iterator[ProcessValueRow] | None = None,
               before_commit: Callable[[], None] | None = None) -> None:
    """Store a batch in one transaction; fall back to deduplication if any row is there.

    `process_values`, when given, yields the batch's process values while they are being
    made (each also lands in `rows`), so the server stores the first rows while the rest
    are still being conditioned. It is run to its end whatever happens. `before_commit`
    runs once every row is sent, just before the commit.
    """
    try:
        with conn.transaction(), conn.cursor() as cur:
            if process_values is not None:
                _copy(cur, _TARGET["process_value"], "process_value", process_values)
            elif rows.process_value:
                _copy(cur, _TARGET["process_value"], "process_value", rows.process_value)
            for table, batch in (("equipment_state", rows.equipment_state),
                                 ("production_count", rows.production_count)):
                if batch:
                    _copy(cur, _TARGET[table], table, batch)
            _write_records(cur, rows)
            if before_commit is not None:
                before_commit()
    except psycopg.errors.UniqueViolation:
        _finish(process_values)
        write_rows_once(conn, rows, before_commit)
    finally:
        _finish(process_values)


def _finish(stream: Iterator[Any] | None) -> None:
    if stream is not None:
        for _ in stream:
            pass


def write_rows_once(conn: psycopg.Connection[Any], rows: Rows,
                    before_commit: Callable[[], None] | None = None) -> None:
    """Store a batch in one transaction, skipping rows already stored."""
    with conn.transaction(), conn.cursor() as cur:
        for table, batch in (("process_value", rows.process_value),
                             ("equipment_state", rows.equipment_state),
                             ("production_count", rows.production_count)):
            if not batch:
                continue
            staging = sql.Identifier(f"staging_{table}")
            names, types = COPY_LAYOUT[table]
            # Spelled out, not LIKE the hypertable: the ingest role may not read it.
            cur.execute(sql.SQL(
                "CREATE TEMPORARY TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
                    staging, sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_))
                        for name, type_ in zip(names, types, strict=True))))
            _copy(cur, staging, table, batch)
            columns = sql.SQL(", ").join(map(sql.Identifier, COPY_LAYOUT[table][0]))
            cur.execute(sql.SQL(
                "INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} "
                "ON CONFLICT DO NOTHING").format(
                    target=_TARGET[table], columns=columns, staging=staging))
        _write_records(cur, rows)
        if before_commit is not None:
            before_commit()


# The records beside the time series. Each is stored once even when a batch is replayed:
# a decision or a marked state by its key, a gap opened only when none is open, and closed
# only while open.
_DISCONTINUITY = """
INSERT INTO ts.counter_discontinuity (ts, signal_id, old_value, new_value, decision, counted)
VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
"""
_UNKNOWN_STATE = """
INSERT INTO ts.unknown_state (ts, equipment_id, state) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
"""
_OPEN_GAP = """
INSERT INTO ts.collection_gap (equipment_id, source, gap_start, gap_end, cause)
VALUES (%(equipment_id)s, %(source)s, %(start)s, %(end)s, %(cause)s)
ON CONFLICT (equipment_id, source) WHERE gap_end IS NULL DO NOTHING
"""
_CLOSE_GAP = """
UPDATE ts.collection_gap SET gap_end = greatest(%(end)s, gap_start)
WHERE equipment_id = %(equipment_id)s AND source = %(source)s AND gap_end IS NULL
"""


def _write_records(cur: psycopg.Cursor[Any], rows: Rows) -> None:
    if rows.counter_discontinuity:
        cur.executemany(_DISCONTINUITY, rows.counter_discontinuity)
    if rows.unknown_state:
        cur.executemany(_UNKNOWN_STATE, rows.unknown_state)
    for start, equipment_id, source, cause, end in rows.collection_gap:
        # In order: a gap may open and close within one batch.
        if cause is None:
            cur.execute(_CLOSE_GAP, {"end": start, "equipment_id": equipment_id,
                                     "source": source})
        else:
            cur.execute(_OPEN_GAP, {"equipment_id": equipment_id, "source": source,
                                    "start": start, "end": end, "cause": cause})


MACHINE_ACTIVITY = """
SELECT e.code,
       (SELECT sms.name FROM ts.equipment_state s
          JOIN mes.state_model_state sms
            ON sms.state_model_id = e.state_model_id AND sms.state_code = s.state
         WHERE s.equipment_id = e.id ORDER BY s.ts DESC LIMIT 1) AS state,
       (SELECT count(*) FROM ts.equipment_state s
         WHERE s.equipment_id = e.id AND s.ts >= %(since)s) AS state_changes,
       (SELECT coalesce(sum(c.good), 0) FROM ts.production_count c
         WHERE c.equipment_id = e.id AND c.ts >= %(since)s) AS good,
       (SELECT coalesce(sum(c.reject), 0) FROM ts.production_count c
         WHERE c.equipment_id = e.id AND c.ts >= %(since)s) AS reject,
       (SELECT count(*) FROM ts.process_value p JOIN mes.signal sg ON sg.id = p.signal_id
         WHERE sg.equipment_id = e.id AND p.ts >= %(since)s) AS process_values
FROM mes.equipment e
WHERE e.level = 'work_unit'
ORDER BY e.code
"""


def machine_activity(conn: psycopg.Connection[Any], since: dt.datetime,
                     ) -> list[tuple[str, str | None, int, int, int, int]]:
    """Per machine: its latest state, and state changes, parts and samples since `since`."""
    return [(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), int(row[5]))
            for row in conn.execute(MACHINE_ACTIVITY, {"since": since}).fetchall()]
