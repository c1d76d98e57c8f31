"""The audit log: who, when, what, before and after for every change to an audited table;
append-only for the application role (enforced by the database); a hash chain that
`mes audit verify` checks, so removing or changing a record is detected."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from transactional.audit import acting, verify_chain
from transactional.models import AuditLog, Document

AdminConnection = psycopg.Connection[tuple[object, ...]]


def _add_documents(url: str, actor: str, *codes: str) -> None:
    with session_factory(url)() as session, session.begin():
        acting(session, actor)
        for code in codes:
            session.add(Document(code=code, title=f"Work instruction {code}"))


def _log(session: Session) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


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
        assert db_admin.execute("SELECT count(*) FROM mes.audit_log").fetchone() == (2,)
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
    assert report.records == 6
    assert report.intact, report.broken


@pytest.mark.parametrize("tampering, finding", [
    ("UPDATE mes.audit_log SET after = jsonb_set(after, '{title}', '\"forged\"') "
     "WHERE id = (SELECT min(id) + 1 FROM mes.audit_log)",
     "its content does not match its hash"),
    ("UPDATE mes.audit_log SET actor = '9999' WHERE id = (SELECT min(id) FROM mes.audit_log)",
     "its content does not match its hash"),
    ("DELETE FROM mes.audit_log WHERE id = (SELECT min(id) + 1 FROM mes.audit_log)",
     "does not follow the record before it"),
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
    report = verify_chain(session)
    assert report.records == 60
    assert report.intact, report.broken
    assert session.execute(text("SELECT count(DISTINCT previous_hash) FROM mes.audit_log")
                           ).scalar_one() == 60


def test_mes_audit_verify_command(use_database: str, db_admin: AdminConnection) -> None:
    _add_documents(use_database, "1001", "WI-X", "WI-Y")
    runner = CliRunner()
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "2 audit records, chain intact" in intact.output
    db_admin.execute("ALTER TABLE mes.audit_log DISABLE TRIGGER tr_audit_log_append_only")
    db_admin.execute("UPDATE mes.audit_log SET actor = 'x' WHERE id = "
                     "(SELECT max(id) FROM mes.audit_log)")
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert "its content does not match its hash" in broken.output
