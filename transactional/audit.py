"""Who is acting, for the audit log, and the check that the log's hash chain is intact.

The log itself is written by database triggers on the audited tables (migration 0003), so
no service can forget it; a service only says who acts, once per transaction. The
application role cannot change or delete audit records, and each record carries the hash
of its predecessor.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

# Recomputes each record's hash from its content and its predecessor's hash, and compares
# the stored `previous_hash` with the hash actually stored in the record before it.
VERIFY = text("""
SELECT id, at, table_name, record_id,
       hash = mes.audit_digest(previous_hash, at, actor, table_name, record_id, action,
                               before, after) AS content_intact,
       previous_hash = coalesce(lag(hash) OVER (ORDER BY id), sha256(''::bytea))
           AS linked
FROM mes.audit_log
ORDER BY id
""")
CHAIN_HEAD = text("SELECT last_id, last_hash FROM mes.audit_chain")


def acting(session: Session, actor: str) -> None:
    """Record `actor` (a person's badge, or a system such as 'erp-import') as who makes
    the changes of the current transaction; the audit triggers refuse changes without."""
    if not actor:
        raise ValueError("an action needs the acting person")
    session.execute(text("SELECT set_config('mes.actor', :actor, true)"), {"actor": actor})


@dataclass(frozen=True)
class AuditReport:
    records: int
    broken: list[str]

    @property
    def intact(self) -> bool:
        return not self.broken


def verify_chain(session: Session) -> AuditReport:
    """Check every audit record's hash and link, and that the chain's head is the last."""
    broken: list[str] = []
    last_id: int | None = None
    count = 0
    for row in session.execute(VERIFY):
        count += 1
        last_id = row.id
        where = (f"audit record {row.id} ({row.table_name} {row.record_id}, "
                 f"{row.at:%Y-%m-%d %H:%M:%S})")
        if not row.content_intact:
            broken.append(f"{where}: its content does not match its hash (changed after "
                          "it was written)")
        if not row.linked:
            broken.append(f"{where}: it does not follow the record before it (a record "
                          "was removed or inserted)")
    head = session.execute(CHAIN_HEAD).one()
    if head.last_id != last_id:
        broken.append(f"the chain's head names record {head.last_id}, but the last record "
                      f"is {last_id}: records at the end were removed")
    return AuditReport(count, broken)
