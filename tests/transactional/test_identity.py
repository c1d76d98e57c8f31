"""Who is acting: passwords and PINs, login sessions with an idle timeout, lock-out after
repeated failures (audited), and the permission each action needs."""

from __future__ import annotations

import os
from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.settings import get_settings
from tests.conftest import PASSWORD, give_password
from tests.transactional.shop_floor import CERTIFIED, QUALITY, ShopFloor
from transactional.models import AuditLog, AuthEvent, Credential

runner = CliRunner()


def mes(*args: str, password: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=None if password is None else password + "\n")
    return result.exit_code, result.output


def test_login_keeps_a_private_token_and_never_the_password(
        session: Session, floor: ShopFloor, use_database: str) -> None:
    give_password(use_database, CERTIFIED)
    code, out = mes("login", CERTIFIED, "--password-stdin", password=PASSWORD)
    assert code == 0, out
    assert "logged in as Ana Lopez (1001), roles: operator" in out
    token_file = get_settings().session_path
    assert os.stat(token_file).st_mode & 0o777 == 0o600
    assert PASSWORD not in token_file.read_text()
    with session.begin():
        stored = session.scalars(select(Credential)).one()
        assert stored.password_hash.startswith("$argon2id$")
        logged = " ".join(str(r.after) for r in session.scalars(select(AuditLog)))
    assert PASSWORD not in logged and stored.password_hash not in logged


def test_repeated_failures_lock_out_and_are_audited(session: Session, floor: ShopFloor,
                                                     use_database: str) -> None:
    give_password(use_database, QUALITY)
    for _ in range(4):
        code, out = mes("login", QUALITY, "--password-stdin", password="wrong password!")
        assert code == 1 and "badge or password not accepted" in out
    code, out = mes("login", QUALITY, "--password-stdin", password="wrong password!")
    assert "now locked out until" in out
    code, out = mes("login", QUALITY, "--password-stdin", password=PASSWORD)
    assert code == 1 and "locked out after repeated failures" in out
    assert not get_settings().session_path.exists()
    with session.begin():
        events = [e.event for e in session.scalars(select(AuthEvent).order_by(AuthEvent.id))]
        audited = session.scalar(text("SELECT count(*) FROM mes.audit_log "
                                      "WHERE table_name = 'auth_event'"))
        sessions = session.scalar(text("SELECT count(*) FROM mes.login_session"))
    assert events == ["password_set", "pin_set"] + ["login_failed"] * 5 + ["locked"]
    assert audited == len(events) and sessions == 0
    # An administrator's new password lifts the lock.
    give_password(use_database, QUALITY)
    assert mes("login", QUALITY, "--password-stdin", password=PASSWORD)[0] == 0


def test_an_idle_session_ends(session: Session, floor: ShopFloor, use_database: str,
                              log_in: Callable[..., None]) -> None:
    log_in(CERTIFIED)
    assert mes("labor", "on", CERTIFIED, "PRESS-1")[0] == 0
    with session.begin():
        session.execute(text("UPDATE mes.login_session "
                             "SET last_seen_at = last_seen_at - interval '16 minutes'"))
    code, out = mes("labor", "off", CERTIFIED)
    assert code == 1 and "timed out after 15 idle minutes" in out
    with session.begin():
        assert session.scalar(text("SELECT count(*) FROM mes.labor_session "
                                   "WHERE signed_off_at IS NULL")) == 1


def test_a_pin_session_does_shop_floor_actions_only(session: Session, floor: ShopFloor,
                                                    use_database: str,
                                                    log_in: Callable[..., None]) -> None:
    log_in("3001", pin=True)
    assert mes("labor", "on", "3001", "PRESS-2")[0] == 0  # the floor's own action
    code, out = mes("order", "release", "4711")
    assert code == 1 and "may not release an order with a PIN login" in out
    log_in("3001")
    assert mes("order", "release", "4711")[0] == 0


def test_system_accounts_and_unknown_badges_cannot_log_in(floor: ShopFloor,
                                                          use_database: str) -> None:
    for badge in ("mes-admin", "9999"):
        code, out = mes("login", badge, "--password-stdin", password=PASSWORD)
        assert code == 1 and "not accepted" in out


def test_a_readable_token_file_is_refused(floor: ShopFloor, use_database: str,
                                          log_in: Callable[..., None]) -> None:
    log_in(CERTIFIED)
    get_settings().session_path.chmod(0o644)
    code, out = mes("labor", "on", CERTIFIED, "PRESS-1")
    assert code == 1 and "can be read by others" in out


def test_set_password_needs_an_administrator(session: Session, floor: ShopFloor,
                                             use_database: str,
                                             log_in: Callable[..., None]) -> None:
    log_in(CERTIFIED)
    code, out = mes("user", "set-password", QUALITY, "--password-stdin", password="a new one 123")
    assert code == 1 and "may not manage passwords and lock-outs: it needs the role " \
        "administrator" in out
    log_in("9001")
    code, out = mes("user", "set-password", QUALITY, "--password-stdin", password="a new one 123")
    assert code == 0, out
    code, out = mes("user", "show", QUALITY)
    assert "roles: quality" in out and "password_set" in out
    with session.begin():
        assert session.scalar(select(AuditLog.actor).where(
            AuditLog.table_name == "auth_event").order_by(AuditLog.id.desc()).limit(1)) \
            == "9001"
    assert mes("logout")[0] == 0
    with session.begin():
        assert session.scalar(text("SELECT count(*) FROM mes.login_session "
                                   "WHERE ended_at IS NULL AND person_id = "
                                   "(SELECT id FROM mes.person WHERE badge = '9001')")) == 0
