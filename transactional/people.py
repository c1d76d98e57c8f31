"""Looking up the people the services act for, by badge.

Whether a person may do something is `transactional.permissions`; whether they are who they
say is `transactional.identity`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from transactional.errors import NotPermitted
from transactional.lookup import by_code
from transactional.models import Person


def person_by_badge(session: Session, badge: str) -> Person:
    """The active person wearing `badge`; NotFound or NotPermitted otherwise."""
    person = by_code(session, Person, badge, key="badge", what="person with badge")
    if not person.active:
        raise NotPermitted(f"badge {badge} ({person.name}) is not active")
    return person
