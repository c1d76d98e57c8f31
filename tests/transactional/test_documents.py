"""Work instructions: numbered drafts, one released revision, the one before superseded."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.transactional.shop_floor import (
    QUALITY,
    SUPERVISOR,
    ShopFloor,
    acting_as,
    person_id,
)
from transactional.documents import add_revision, release, served_revision
from transactional.errors import IllegalTransition, NotFound, RuleViolation
from transactional.models import AuditLog, DocumentRevision


def statuses(session: Session, document_id: int) -> dict[int, str]:
    with session.begin():
        return {r.revision: r.status for r in session.scalars(
            select(DocumentRevision).where(DocumentRevision.document_id == document_id)
            .execution_options(populate_existing=True))}


def test_revisions_are_numbered_drafts_and_a_new_document_needs_a_title(
        session: Session, floor: ShopFloor) -> None:
    with acting_as(session, SUPERVISOR):
        first = add_revision(session, "WI-PAINT", "Mask the holes.", title="Painting")
    with acting_as(session, SUPERVISOR):
        second = add_revision(session, "WI-PAINT", "Mask the holes; check the gun.")
    assert (first.revision, first.status, first.released_at) == (1, "draft", None)
    assert (second.revision, second.status) == (2, "draft")
    assert second.document_id == first.document_id

    with pytest.raises(NotFound, match="no document WI-WASH: give a title to create it"), \
            acting_as(session, SUPERVISOR):
        add_revision(session, "WI-WASH", "Rinse.")
    with pytest.raises(RuleViolation, match="needs content"), acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PAINT", "  ")


def test_releasing_a_draft_supersedes_the_released_revision(
        session: Session, floor: ShopFloor) -> None:
    with acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PRESS", "Rev 2: also deburr the edge.")
    with acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PRESS", "Rev 3: not ready yet.")
    with session.begin():
        assert served_revision(session, "WI-PRESS").revision == 1

    with acting_as(session, QUALITY):
        released = release(session, "WI-PRESS", 2, QUALITY)

    assert statuses(session, floor.document_id) == {1: "superseded", 2: "released", 3: "draft"}
    assert released.released_by == person_id_of(session, QUALITY)
    assert released.released_at is not None
    with session.begin():
        served = served_revision(session, "WI-PRESS")
    assert (served.revision, served.content) == (2, "Rev 2: also deburr the edge.")


def person_id_of(session: Session, badge: str) -> int:
    with session.begin():
        return person_id(session, badge)


@pytest.mark.parametrize(("revision", "status"), [(1, "released"), (2, "superseded")])
def test_only_a_draft_can_be_released(session: Session, floor: ShopFloor, revision: int,
                                      status: str) -> None:
    with acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PRESS", "Rev 2.")
    with acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PRESS", "Rev 3.")
    with acting_as(session, SUPERVISOR):
        release(session, "WI-PRESS", 2, SUPERVISOR)
    with acting_as(session, SUPERVISOR):
        release(session, "WI-PRESS", 3, SUPERVISOR)
    target = {"released": 3, "superseded": 2}[status]

    with pytest.raises(IllegalTransition, match=(
            f"WI-PRESS revision {target} is {status}: only a draft can be released")), \
            acting_as(session, SUPERVISOR):
        release(session, "WI-PRESS", target, SUPERVISOR)
    assert statuses(session, floor.document_id) == {
        1: "superseded", 2: "superseded", 3: "released"}


def test_what_cannot_be_released_or_served(session: Session, floor: ShopFloor) -> None:
    with pytest.raises(NotFound, match="WI-PRESS has no revision 7"), \
            acting_as(session, SUPERVISOR):
        release(session, "WI-PRESS", 7, SUPERVISOR)
    with pytest.raises(NotFound, match="no document WI-NONE"), acting_as(session, SUPERVISOR):
        release(session, "WI-NONE", 1, SUPERVISOR)
    with acting_as(session, SUPERVISOR):
        add_revision(session, "WI-PAINT", "Mask the holes.", title="Painting")
    # A draft is never served.
    with pytest.raises(RuleViolation, match="WI-PAINT has no released revision"), \
            session.begin():
        served_revision(session, "WI-PAINT")


def test_documents_are_audited_under_the_badge(session: Session, floor: ShopFloor) -> None:
    with acting_as(session, QUALITY):
        add_revision(session, "WI-PAINT", "Mask the holes.", title="Painting")
    with acting_as(session, SUPERVISOR):
        release(session, "WI-PAINT", 1, SUPERVISOR)

    with session.begin():
        rows = session.execute(
            select(AuditLog.table_name, AuditLog.action, AuditLog.actor, AuditLog.after)
            .where(AuditLog.table_name.in_(["document", "document_revision"]),
                   AuditLog.actor != "mes-admin")
            .order_by(AuditLog.id)).all()
    assert [(r.table_name, r.action, r.actor) for r in rows] == [
        ("document", "insert", QUALITY),
        ("document_revision", "insert", QUALITY),
        ("document_revision", "update", SUPERVISOR)]
    assert rows[2].after["status"] == "released"
