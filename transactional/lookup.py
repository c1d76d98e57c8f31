"""Reading one record for a service that is about to change it, or looking one up by code.

Read afresh, and row-locked when asked, so that a change committed meanwhile (by the
holder of the lock this waits for) is seen; a missing record is a NotFound.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from transactional.errors import NotFound

T = TypeVar("T")
M = TypeVar("M")


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


def by_code(session: Session, model: type[M], code: str, *, what: str, key: str = "code",
            lock: bool = False) -> M:
    """The `model` row whose `key` column holds `code`; NotFound("no `what` `code`")."""
    column: Any = getattr(model, key)
    found: M = fresh_one(session, select(model).where(column == code), lock=lock,
                         missing=f"no {what} {code}")
    return found
