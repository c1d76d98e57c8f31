"""Reading one record for a service that is about to change it.

Read afresh, and row-locked when asked, so that a change committed meanwhile (by the
holder of the lock this waits for) is seen; a missing record is a NotFound.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from transactional.errors import NotFound

T = TypeVar("T")


def fresh_one(session: Session, query: Select[T], *, lock: bool, missing: str) -> T:
    """The one row `query` selects, re-read; NotFound(`missing`) when there is none."""
    query = query.execution_options(populate_existing=True)
    if lock:
        # FOR NO KEY UPDATE: rows that only refer to the record do not wait for it.
        query = query.with_for_update(key_share=True)
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(missing)
    return row
