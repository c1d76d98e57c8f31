"""Drops raw time-series chunks past a horizon (drop_chunks works on the Apache edition).

Only whole chunks go: a chunk that still holds a row newer than the horizon is kept, so a
retention run never cuts a chunk in half. Derived tables are not touched here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

from ingest.schema import RAW_HYPERTABLES
from transactional.errors import MesError

_AGE = re.compile(r"^\s*(\d+)\s*(d|h|w|days?|hours?|weeks?)\s*$", re.IGNORECASE)
_UNIT = {"d": "days", "h": "hours", "w": "weeks"}


def parse_age(value: str) -> dt.timedelta:
    """'90d', '12h', '2w' as a timedelta; ValueError with the accepted forms otherwise."""
    match = _AGE.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not an age like 90d, 36h or 2w")
    return dt.timedelta(**{_UNIT[match.group(2)[0].lower()]: int(match.group(1))})


@dataclass(frozen=True)
class RetentionResult:
    hypertable: str
    chunks: tuple[str, ...]


class PolicyUnavailableError(MesError):
    """Retention policies need the community (TSL) edition of TimescaleDB."""


def schedule_retention(conn: Connection, older_than: dt.timedelta, *,
                       edition: str) -> list[str]:
    """Replace the retention policy of each raw hypertable (community edition only).

    `edition` is what `mes.migrate.timescale_info` reports for this database.
    """
    if edition != "timescale":
        raise PolicyUnavailableError(
            f"this TimescaleDB is the {edition} edition, which has no retention "
            "policies: run `mes db retention --older-than ...` from cron or a pipeline instead")
    for hypertable in RAW_HYPERTABLES:
        conn.execute(text("SELECT remove_retention_policy(CAST(:h AS regclass), "
                          "if_exists => true)"), {"h": hypertable})
        conn.execute(text("SELECT add_retention_policy(CAST(:h AS regclass), "
                          "drop_after => CAST(:age AS interval))"),
                     {"h": hypertable, "age": older_than})
    return list(RAW_HYPERTABLES)


def drop_old_chunks(conn: Connection, older_than: dt.timedelta, *,
                    dry_run: bool = False) -> list[RetentionResult]:
    """Drop (or, with dry_run, only list) the chunks entirely older than now - older_than."""
    function = "show_chunks" if dry_run else "drop_chunks"
    cutoff = conn.execute(text("SELECT now() - CAST(:age AS interval)"),
                          {"age": older_than}).scalar_one()
    results = []
    for hypertable in RAW_HYPERTABLES:
        chunks = conn.execute(
            text(f"SELECT {function}(CAST(:hypertable AS regclass), older_than => :cutoff)"),
            {"hypertable": hypertable, "cutoff": cutoff},
        ).scalars().all()
        results.append(RetentionResult(hypertable, tuple(str(c) for c in chunks)))
    return results
