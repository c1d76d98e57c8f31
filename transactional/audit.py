"""Who is acting, for the audit log; sealing the log into its hash chain; the check that
the chain is intact, against its own head and against an anchor kept outside the database.

The log itself is written by database triggers on the audited tables, so no service can
forget it; a service only says who acts, once per transaction, and the acting person must
be a person of the plant. Writers do not wait for each other: each record is sealed after
it commits (`mes.audit_seal()`, run after every command), taking the next chain position
and the hash of its predecessor. The application role cannot change or delete records.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from transactional.errors import FileProblems

# Recomputes each sealed record's hash from its position, content and predecessor's hash,
# and compares the stored `previous_hash` with the hash stored at the position before.
VERIFY = text("""
SELECT id, chain_position, at, table_name, record_id, hash,
       hash = mes.audit_seal_digest(previous_hash, chain_position, at, actor, table_name,
                                    record_id, action, before, after) AS content_intact,
       previous_hash = coalesce(lag(hash) OVER (ORDER BY chain_position), sha256(''::bytea))
           AS linked,
       chain_position - coalesce(lag(chain_position) OVER (ORDER BY chain_position), 0)
           AS step
FROM mes.audit_log
WHERE chain_position IS NOT NULL
ORDER BY chain_position
""")
CHAIN_HEAD = text("SELECT records, last_hash FROM mes.audit_chain")
UNSEALED = text("SELECT count(*) FROM mes.audit_log WHERE chain_position IS NULL")
SEAL = text("SELECT mes.audit_seal()")


def acting(session: Session, actor: str) -> None:
    """Record `actor` (a person's badge, or a system account such as 'mes-admin') as who
    makes the changes of the current transaction; the audit triggers refuse changes
    without one, or with one who is no active person of the plant."""
    if not actor:
        raise ValueError("an action needs the acting person")
    session.execute(text("SELECT set_config('mes.actor', :actor, true)"), {"actor": actor})


def seal(session: Session) -> int:
    """Seal the records committed so far into the chain, in its own transaction; how many.
    A sealer already at work makes this return 0 at once: it seals them."""
    with session.begin():
        sealed: int = session.execute(SEAL).scalar_one()
    return sealed


@dataclass(frozen=True)
class Anchor:
    """The chain's head at one moment: how many records, and the hash of the last."""

    records: int
    last_hash: str
    taken_at: str

    def as_json(self) -> dict[str, Any]:
        return {"records": self.records, "last_hash": self.last_hash,
                "taken_at": self.taken_at}


@dataclass(frozen=True)
class AuditReport:
    records: int
    broken: list[str]
    unsealed: int = 0

    @property
    def intact(self) -> bool:
        return not self.broken


def head(session: Session) -> Anchor:
    records, last_hash = session.execute(CHAIN_HEAD).one()
    now = session.execute(text("SELECT now()")).scalar_one()
    return Anchor(int(records), bytes(last_hash).hex(),
                  now.astimezone(dt.UTC).isoformat(timespec="seconds"))


def read_anchor(path: Path) -> Anchor:
    try:
        data = json.loads(path.read_text())
        return Anchor(int(data["records"]), str(data["last_hash"]), str(data["taken_at"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FileProblems(path, [f"not an audit anchor written by mes audit anchor: "
                                  f"{error}"]) from None


def verify_chain(session: Session, anchor: Anchor | None = None) -> AuditReport:
    """Check every sealed record's hash and link, that no position is missing, that the
    chain's head is its last record, and (with an anchor taken earlier) that the chain
    still holds the anchored record unchanged: a truncated or rewritten chain shows."""
    broken: list[str] = []
    count = 0
    last_position = 0
    last_hash: bytes | None = None
    hashes_at: dict[int, bytes] = {}
    for row in session.execute(VERIFY):
        count += 1
        where = (f"audit record {row.id} at position {row.chain_position} ({row.table_name} "
                 f"{row.record_id}, {row.at:%Y-%m-%d %H:%M:%S})")
        if not row.content_intact:
            broken.append(f"{where}: its content does not match its hash (changed after "
                          "it was written)")
        if row.step != 1:
            broken.append(f"{where}: {row.step - 1} record(s) before it are missing "
                          "(removed from the chain)")
        elif not row.linked:
            broken.append(f"{where}: it does not follow the record before it (a record "
                          "was removed or inserted)")
        last_position = row.chain_position
        last_hash = bytes(row.hash)
        if anchor is not None and row.chain_position == anchor.records:
            hashes_at[anchor.records] = bytes(row.hash)
    records, head_hash = session.execute(CHAIN_HEAD).one()
    if records != last_position or (last_hash is not None and bytes(head_hash) != last_hash):
        broken.append(f"the chain's head names {records} records, but the last record is at "
                      f"position {last_position}: records at the end were removed")
    if anchor is not None:
        if last_position < anchor.records:
            broken.append(f"the anchor of {anchor.taken_at} counted {anchor.records} records, "
                          f"the chain has {last_position}: it was truncated")
        elif anchor.records and hashes_at.get(anchor.records, b"").hex() != anchor.last_hash:
            broken.append(f"the record at position {anchor.records} does not have the hash "
                          f"anchored on {anchor.taken_at}: the chain was rewritten")
    unsealed: int = session.execute(UNSEALED).scalar_one()
    return AuditReport(count, broken, unsealed)
