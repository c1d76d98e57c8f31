"""The audit log: who, when, what, before and after for every change to an audited table;
append-only for the application role (enforced by the database); a hash chain that
`mes audit verify` checks, so removing or changing a record is detected."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from transactional.audit import acting, head, seal, verify_chain
from transactional.models import AuditLog, Document, Person

AdminConnection = psycopg.Connection[tuple[object, ...]]


BADGES = ("1001", "1002", "2001", "3001", "100", "101", "102", "103")


@pytest.fixture(autouse=True)
def _people(db_url: str) -> None:
    """Audit actors must be people of the plant: these, added by administration."""
    with session_factory(db_url)() as session:
        with session.begin():
            acting(session, "mes-admin")
            session.add_all(Person(badge=badge, name=f"Person {badge}") for badge in BADGES)
        seal(session)


def _add_documents(url: str, actor: str, *codes: str) -> None:
    """A command's transaction: the change, then the seal after it commits."""
    with session_factory(url)() as session:
        with session.begin():
            acting(session, actor)
            for code in codes:
                session.add(Document(code=code, title=f"Work instruction {code}"))
        seal(session)


def _log(session: Session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).where(AuditLog.table_name != "person")
                                .order_by(AuditLog.id)))


def test_a_change_records_who_when_what_before_and_after(db_url: str, session: Session) -> None:
    _add_documents(db_url, "1001", "WI-1")
    with session_factory(db_url)() as other, other.begin():
        acting(other, "2001")
        document = other.scalars(select(Document).where(Document.code == "WI-1")).one()
        document.title = "Stamping, revised"
    with session_factory(db_url)() as other, other.begin():
        acting(other, "3001")
        other.delete(other.scalars(select(Document).where(Document.code == "WI-1")).one())

    records = _log(session)
    assert [(r.actor, r.table_name, r.action) for r in records] == [
        ("1001", "document", "insert"), ("2001", "document", "update"),
        ("3001", "document", "delete")]
    inserted, updated, deleted = records
    assert inserted.before is None and inserted.after is not None
    assert inserted.after["title"] == "Work instruction WI-1"
    assert updated.before is not None and updated.after is not None
    assert (updated.before["title"], updated.after["title"]) == (
        "Work instruction WI-1", "Stamping, revised")
    assert deleted.after is None and deleted.before == updated.after
    assert len({r.record_id for r in records}) == 1
    assert inserted.at <= updated.at <= deleted.at


def test_a_change_without_an_acting_person_is_refused(db_url: str, session: Session) -> None:
    session.add(Document(code="WI-2", title="No one"))
    with pytest.raises(DBAPIError) as refused:
        session.flush()
    assert isinstance(refused.value.orig, errors.InsufficientPrivilege)
    assert "needs the acting person" in str(refused.value.orig)


def test_the_application_role_cannot_change_or_forge_audit_records(
        db_url: str, db_admin: AdminConnection) -> None:
    _add_documents(db_url, "1001", "WI-3")
    db_admin.execute("SET ROLE mes_app")
    try:
        # Acting as the application, a change is still audited...
        db_admin.execute("BEGIN")
        db_admin.execute("SELECT set_config('mes.actor', '1002', true)")
        db_admin.execute("UPDATE mes.document SET title = 'x' WHERE code = 'WI-3'")
        db_admin.execute("COMMIT")
        # ...but the log itself can be read, not written.
        assert db_admin.execute("SELECT count(*) FROM mes.audit_log "
                                "WHERE table_name = 'document'").fetchone() == (2,)
        for statement in (
            "UPDATE mes.audit_log SET actor = 'nobody'",
            "DELETE FROM mes.audit_log",
            "TRUNCATE mes.audit_log",
            "INSERT INTO mes.audit_log (at, actor, table_name, record_id, action, "
            "previous_hash, hash) VALUES (now(), 'x', 'document', '1', 'insert', '', '')",
            "UPDATE mes.audit_chain SET last_hash = ''",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                db_admin.execute(statement)
    finally:
        db_admin.execute("RESET ROLE")
    # Not even the owner can edit a record without first removing the guard.
    with pytest.raises(errors.InsufficientPrivilege):
        db_admin.execute("UPDATE mes.audit_log SET actor = 'nobody'")


def test_verify_finds_an_intact_chain_intact(db_url: str, session: Session) -> None:
    for actor in ("1001", "1002", "2001"):
        _add_documents(db_url, actor, f"WI-{actor}-A", f"WI-{actor}-B")
    report = verify_chain(session)
    assert report.records == len(BADGES) + 6
    assert report.intact, report.broken


@pytest.mark.parametrize("tampering, finding", [
    ("UPDATE mes.audit_log SET after = jsonb_set(after, '{title}', '\"forged\"') "
     "WHERE id = (SELECT min(id) + 1 FROM mes.audit_log)",
     "its content does not match its hash"),
    ("UPDATE mes.audit_log SET actor = '9999' WHERE id = (SELECT min(id) FROM mes.audit_log)",
     "its content does not match its hash"),
    ("DELETE FROM mes.audit_log WHERE id = (SELECT min(id) + 1 FROM mes.audit_log)",
     "before it are missing"),
    ("DELETE FROM mes.audit_log WHERE id = (SELECT max(id) FROM mes.audit_log)",
     "records at the end were removed"),
], ids=["content", "actor", "removed-in-the-middle", "removed-at-the-end"])
def test_verify_detects_tampering(db_url: str, db_admin: AdminConnection, session: Session,
                                  tampering: str, finding: str) -> None:
    _add_documents(db_url, "1001", "WI-A", "WI-B", "WI-C")
    db_admin.execute("ALTER TABLE mes.audit_log DISABLE TRIGGER tr_audit_log_append_only")
    db_admin.execute(tampering)
    db_admin.execute("ALTER TABLE mes.audit_log ENABLE TRIGGER tr_audit_log_append_only")
    report = verify_chain(session)
    assert not report.intact
    assert any(finding in problem for problem in report.broken), report.broken


def test_concurrent_writers_keep_one_unbroken_chain(db_url: str, session: Session) -> None:
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(15):
                _add_documents(db_url, f"10{worker}", f"WI-{worker}-{n}")
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    seal(session)
    report = verify_chain(session)
    assert report.records == len(BADGES) + 60
    assert report.intact, report.broken
    assert session.execute(text("SELECT count(DISTINCT previous_hash) FROM mes.audit_log")
                           ).scalar_one() == len(BADGES) + 60


def test_mes_audit_verify_command(use_database: str, db_admin: AdminConnection) -> None:
    _add_documents(use_database, "1001", "WI-X", "WI-Y")
    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert f"{len(BADGES) + 2} audit records, chain intact" in intact.output
    db_admin.execute("ALTER TABLE mes.audit_log DISABLE TRIGGER tr_audit_log_append_only")
    db_admin.execute("UPDATE mes.audit_log SET actor = 'x' WHERE id = "
                     "(SELECT max(id) FROM mes.audit_log)")
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "its content does not match its hash" in broken.output


def test_an_anchor_detects_a_truncated_chain(use_database: str, db_admin: AdminConnection,
                                             tmp_path: Path) -> None:
    """Truncating the log and resetting the chain's head looks intact from inside the
    database; against an anchor written before, it does not."""
    _add_documents(use_database, "1001", "WI-1", "WI-2")
    runner = CliRunner()
    anchor = tmp_path / "anchor.json"
    written = runner.invoke(app, ["audit", "anchor", "--to", str(anchor)])
    assert written.exit_code == 0, written.output
    assert json.loads(anchor.read_text())["records"] == len(BADGES) + 2
    assert runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)]).exit_code == 0

    with pytest.raises(errors.InsufficientPrivilege):  # the guard first
        db_admin.execute("TRUNCATE mes.audit_log")
    db_admin.execute("ALTER TABLE mes.audit_log DISABLE TRIGGER USER")
    db_admin.execute("ALTER TABLE mes.audit_chain DISABLE TRIGGER USER")
    db_admin.execute("TRUNCATE mes.audit_log")
    db_admin.execute("UPDATE mes.audit_chain SET records = 0, last_id = NULL, "
                     "last_hash = sha256(''::bytea)")
    alone = runner.invoke(app, ["audit", "verify"])
    assert "0 audit records, chain intact" in alone.output  # what the issue found
    anchored = runner.invoke(app, ["audit", "verify", "--anchor", str(anchor)])
    assert anchored.exit_code == 1
    assert "it was truncated" in anchored.output


def test_an_anchor_detects_a_rewritten_chain(db_url: str, db_admin: AdminConnection,
                                             session: Session) -> None:
    """Someone with the owner's rights recomputes every hash after changing a record: the
    chain is consistent again, but the anchored record's hash differs."""
    _add_documents(db_url, "1001", "WI-1", "WI-2")
    anchor = head(session)
    session.rollback()
    db_admin.execute("ALTER TABLE mes.audit_log DISABLE TRIGGER USER")
    db_admin.execute("UPDATE mes.audit_log SET actor = '1002' WHERE table_name = 'document'")
    db_admin.execute("UPDATE mes.audit_log SET chain_position = NULL, hash = NULL, "
                     "previous_hash = NULL")
    db_admin.execute("UPDATE mes.audit_chain SET records = 0, last_id = NULL, "
                     "last_hash = sha256(''::bytea)")
    db_admin.execute("SELECT mes.audit_seal()")
    assert verify_chain(session).intact  # consistent from inside
    session.rollback()
    report = verify_chain(session, anchor)
    assert not report.intact
    assert any("the chain was rewritten" in problem for problem in report.broken)


def test_an_audit_actor_must_be_a_person_of_the_plant(db_url: str, session: Session) -> None:
    with pytest.raises(DBAPIError) as refused, session.begin():
        acting(session, "erp-import")  # free text, as imports once named themselves
        session.add(Document(code="WI-9", title="Nobody"))
        session.flush()
    assert "who is no active person of this plant" in str(refused.value.orig)
    assert session.scalar(select(Document.id).where(Document.code == "WI-9")) is None


def test_writers_do_not_wait_for_each_other(db_url: str, db_admin: AdminConnection) -> None:
    """Two audited transactions open at once both get their records written: no row
    shared by every writer is locked until commit (the sealer hashes them afterwards)."""
    first = session_factory(db_url)()
    second = session_factory(db_url)()
    try:
        first.begin()
        acting(first, "1001")
        first.add(Document(code="WI-P1", title="one"))
        first.flush()
        second.begin()
        acting(second, "1002")
        second.add(Document(code="WI-P2", title="two"))
        second.flush()  # would wait for `first` to commit if writers shared the chain's row
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()
    with session_factory(db_url)() as other:
        assert seal(other) == 2
        assert verify_chain(other).intact
