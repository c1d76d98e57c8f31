"""An operator's reason for a stop (`mes downtime classify`): audited, and it wins over
the machine's fault code when the pipelines derive the stop again.

A stop is named by its machine and the moment it began, so a classification outlives
the derived event rows. The caller owns the transaction; re-deriving is the caller's too.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from transactional.errors import NotFound
from transactional.models import DowntimeClassification, DowntimeReason
from transactional.permissions import Action, require


def classify_stop(session: Session, equipment_id: int, started_at: dt.datetime,
                  reason_code: str, note: str | None = None) -> DowntimeClassification:
    """Record (or change) the reason of the stop of `equipment_id` that began at
    `started_at`, as the person acting in this transaction."""
    person = require(session, Action.CLASSIFY_DOWNTIME)
    reason = session.scalar(select(DowntimeReason).where(DowntimeReason.code == reason_code))
    if reason is None:
        raise NotFound(f"downtime reason {reason_code!r} does not exist")
    row = session.scalar(select(DowntimeClassification).where(
        DowntimeClassification.equipment_id == equipment_id,
        DowntimeClassification.started_at == started_at).with_for_update())
    if row is None:
        row = DowntimeClassification(equipment_id=equipment_id, started_at=started_at,
                                     downtime_reason_id=reason.id, person_id=person.id,
                                     note=note)
        session.add(row)
    else:
        row.downtime_reason_id = reason.id
        row.person_id = person.id
        row.note = note
        row.classified_at = dt.datetime.now(dt.UTC)
    session.flush()
    return row
