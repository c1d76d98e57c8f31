"""Work instructions: numbered revisions of a document, drafted, released, superseded.

Exactly one revision of a document is served to operators at a time: the released one.
Revisions are never edited or deleted; a change is a new draft released in its turn.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from transactional.errors import IllegalTransition, NotFound, RuleViolation
from transactional.labor import person_by_badge
from transactional.limits import code as bounded_code
from transactional.lookup import by_code
from transactional.models import Document, DocumentRevision
from transactional.permissions import Action, require


def document_by_code(session: Session, code: str, *, lock: bool = False) -> Document:
    # Locked: serialises revision numbering and releases of one document.
    return by_code(session, Document, code, what="document", lock=lock)


def add_revision(session: Session, document_code: str, content: str,
                 title: str | None = None) -> DocumentRevision:
    """Add a draft revision, numbered one past the newest. A document that does not exist
    yet is created when a title is given."""
    require(session, Action.DRAFT_INSTRUCTION)
    if not content.strip():
        raise RuleViolation(f"{document_code}: a revision needs content")
    try:
        document = document_by_code(session, document_code, lock=True)
    except NotFound:
        if not title:
            raise NotFound(f"no document {document_code}: give a title to create it") from None
        bounded_code(document_code, "document code")
        document = Document(code=document_code, title=title)
        session.add(document)
        session.flush()
    newest = session.scalar(select(func.max(DocumentRevision.revision))
                            .where(DocumentRevision.document_id == document.id))
    revision = DocumentRevision(document_id=document.id, revision=(newest or 0) + 1,
                                content=content)
    session.add(revision)
    session.flush()
    session.refresh(revision)
    return revision


def release(session: Session, document_code: str, revision: int,
            by_badge: str) -> DocumentRevision:
    """Release a draft revision; the revision released before it becomes superseded."""
    require(session, Action.PUBLISH_INSTRUCTION)
    person = person_by_badge(session, by_badge)
    document = document_by_code(session, document_code, lock=True)
    rows = {r.revision: r for r in session.scalars(
        select(DocumentRevision).where(DocumentRevision.document_id == document.id)
        .execution_options(populate_existing=True))}
    target = rows.get(revision)
    if target is None:
        raise NotFound(f"{document_code} has no revision {revision}")
    if target.status != "draft":
        raise IllegalTransition(f"{document_code} revision {revision} is {target.status}: "
                                "only a draft can be released")
    now = session.scalar(select(func.now()))
    for previous in rows.values():
        if previous.status == "released":
            previous.status = "superseded"
    # Superseded first: the database allows one released revision per document.
    session.flush()
    target.status = "released"
    target.released_at = now
    target.released_by = person.id
    session.flush()
    return target


def served_revision(session: Session, document_code: str) -> DocumentRevision:
    """The revision operators work from: the released one."""
    document = document_by_code(session, document_code)
    served = session.scalars(select(DocumentRevision).where(
        DocumentRevision.document_id == document.id,
        DocumentRevision.status == "released")
        .execution_options(populate_existing=True)).one_or_none()
    if served is None:
        raise RuleViolation(f"{document_code} has no released revision")
    return served
