"""Authentication: passwords and PINs (Argon2), login sessions with an idle timeout,
lock-out after repeated failures, and re-entering the password to sign.

The same service serves the command line and the operator station: they keep the session
token, the database keeps only its SHA-256. Failures and lock-outs are recorded in their own
transaction, so a refused attempt is counted even though the caller rolls back. What a
person may do once authenticated is `transactional.permissions`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from transactional.audit import acting
from transactional.errors import NotFound, NotPermitted, RuleViolation
from transactional.lookup import by_code
from transactional.models import AuthEvent, Credential, LoginSession, Person

LOGIN_SERVICE = "mes-login"
MIN_PASSWORD = 10
PIN_DIGITS = (4, 8)
_hasher = PasswordHasher()  # Argon2id with the library's current parameters


@dataclass(frozen=True)
class Policy:
    """How long a session lasts and when repeated failures lock a person out."""

    idle_timeout: dt.timedelta = dt.timedelta(minutes=15)
    max_session: dt.timedelta = dt.timedelta(hours=12)
    max_failures: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Authenticated:
    """A person resumed from a valid session token, and how they logged in."""

    person: Person
    method: str
    session_id: int


def _now(session: Session) -> dt.datetime:
    now: dt.datetime = session.execute(select(func.now())).scalar_one()
    return now


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _human(session: Session, badge: str) -> Person:
    person = by_code(session, Person, badge, key="badge", what="person with badge")
    if person.kind != "human":
        raise NotPermitted(f"{badge} is a system account: nobody logs in as it")
    return person


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise RuleViolation(f"a password needs at least {MIN_PASSWORD} characters")
    if password.strip() != password:
        raise RuleViolation("a password cannot start or end with a space")


def check_pin_rules(pin: str) -> None:
    low, high = PIN_DIGITS
    if not (pin.isdigit() and low <= len(pin) <= high):
        raise RuleViolation(f"a PIN is {low} to {high} digits")


def _event(session: Session, badge: str, person_id: int | None, event: str,
           detail: str | None = None) -> None:
    session.add(AuthEvent(badge=badge[:64], person_id=person_id, event=event, detail=detail))
    session.flush()


def set_password(session: Session, badge: str, password: str,
                 pin: str | None = None) -> Person:
    """Set a person's password (and PIN, if given); clears failures and a lock-out. The
    caller has checked MANAGE_USERS and owns the transaction (administration)."""
    person = _human(session, badge)
    check_password_rules(password)
    if pin is not None:
        check_pin_rules(pin)
    credential = session.get(Credential, person.id, populate_existing=True)
    if credential is None:
        credential = Credential(person_id=person.id, password_hash=_hasher.hash(password))
        session.add(credential)
    else:
        credential.password_hash = _hasher.hash(password)
        credential.changed_at = _now(session)
    credential.failed_attempts = 0
    credential.locked_until = None
    if pin is not None:
        credential.pin_hash = _hasher.hash(pin)
    session.flush()
    _event(session, badge, person.id, "password_set")
    if pin is not None:
        _event(session, badge, person.id, "pin_set")
    return person


def _matches(stored: str | None, secret: str) -> bool:
    if stored is None:
        return False
    try:
        return _hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False


def _record_failure(session: Session, badge: str, event: str, policy: Policy) -> str | None:
    """Count a failed attempt in a transaction of its own (it must survive the caller's
    rollback); returns the lock-out's end when this failure locks the person out."""
    bind = session.get_bind()
    with Session(bind) as separate, separate.begin():
        role = session.scalar(text("SELECT current_user"))
        if role == "mes_app":
            separate.execute(text("SET LOCAL ROLE mes_app"))
        acting(separate, LOGIN_SERVICE)
        person = separate.scalars(select(Person).where(Person.badge == badge)).one_or_none()
        if person is None:
            _event(separate, badge, None, event, "unknown badge")
            return None
        _event(separate, badge, person.id, event)
        credential = separate.scalars(
            select(Credential).where(Credential.person_id == person.id)
            .with_for_update()).one_or_none()
        if credential is None:
            return None
        credential.failed_attempts += 1
        if credential.failed_attempts >= policy.max_failures:
            until = _now(separate) + policy.lockout
            credential.locked_until = until
            credential.failed_attempts = 0
            separate.flush()
            _event(separate, badge, person.id, "locked",
                   f"{policy.max_failures} failed attempts")
            return f"{until:%Y-%m-%d %H:%M}"
        return None


def _verify(session: Session, badge: str, secret: str, method: str, event: str,
            policy: Policy) -> Person:
    """The person, if `secret` is their password (or PIN) and they are not locked out;
    NotPermitted otherwise, the failure counted."""
    refused = "badge or password not accepted" if method == "password" else \
        "badge or PIN not accepted"
    person = session.scalars(select(Person).where(Person.badge == badge)).one_or_none()
    credential = None if person is None else session.scalars(
        select(Credential).where(Credential.person_id == person.id)
        .execution_options(populate_existing=True)).one_or_none()
    if person is not None and credential is not None and credential.locked_until is not None \
            and credential.locked_until > _now(session):
        raise NotPermitted(f"{badge} is locked out after repeated failures until "
                           f"{credential.locked_until:%Y-%m-%d %H:%M}; an administrator can "
                           "set a new password (mes user set-password)")
    stored = None if credential is None else (
        credential.password_hash if method == "password" else credential.pin_hash)
    if person is None or not person.active or person.kind != "human" \
            or not _matches(stored, secret):
        locked = _record_failure(session, badge, event, policy)
        if locked:
            raise NotPermitted(f"{refused}; {badge} is now locked out until {locked}")
        raise NotPermitted(refused)
    return person


def log_in(session: Session, badge: str, secret: str, *, method: str = "password",
           policy: Policy | None = None) -> str:
    """Authenticate and open a session; returns its token (kept by the client only)."""
    policy = policy or Policy()
    if method not in ("password", "pin"):
        raise RuleViolation(f"log in with a password or a PIN, not {method!r}")
    person = _verify(session, badge, secret, method, "login_failed", policy)
    credential = session.get_one(Credential, person.id)
    credential.failed_attempts = 0
    token = secrets.token_urlsafe(32)
    now = _now(session)
    session.add(LoginSession(token_sha256=_token_digest(token), person_id=person.id,
                             method=method, started_at=now, last_seen_at=now,
                             idle_timeout=policy.idle_timeout,
                             expires_at=now + policy.max_session))
    acting(session, LOGIN_SERVICE)
    _event(session, badge, person.id, "login", method)
    return token


def resume(session: Session, token: str) -> Authenticated:
    """The person of a session token, if the session is open, not idle past its timeout and
    not past its end; marks it used now."""
    login = session.scalars(
        select(LoginSession).where(LoginSession.token_sha256 == _token_digest(token))
        .with_for_update().execution_options(populate_existing=True)).one_or_none()
    if login is None or login.ended_at is not None:
        raise NotPermitted("not logged in (or logged out): mes login")
    now = _now(session)
    if now > login.expires_at:
        raise NotPermitted(f"the session ended at {login.expires_at:%Y-%m-%d %H:%M}: "
                           "mes login again")
    if now - login.last_seen_at > login.idle_timeout:
        raise NotPermitted(f"the session timed out after "
                           f"{login.idle_timeout.total_seconds() / 60:g} idle minutes: "
                           "mes login again")
    person = session.get_one(Person, login.person_id, populate_existing=True)
    if not person.active:
        raise NotPermitted(f"badge {person.badge} ({person.name}) is not active")
    login.last_seen_at = now
    session.flush()
    return Authenticated(person, login.method, login.id)


def log_out(session: Session, token: str) -> Person | None:
    """End the session of `token`; the person it was, or None if it was not open."""
    login = session.scalars(
        select(LoginSession).where(LoginSession.token_sha256 == _token_digest(token),
                                   LoginSession.ended_at.is_(None))).one_or_none()
    if login is None:
        return None
    login.ended_at = _now(session)
    login.end_reason = "logout"
    person = session.get_one(Person, login.person_id)
    acting(session, LOGIN_SERVICE)
    _event(session, person.badge, person.id, "logout")
    return person


def confirm_signer(session: Session, signer: Person, password: str,
                   policy: Policy | None = None) -> None:
    """Part 11 §11.200: the signer enters their password at the moment of signing, even
    within a session; a wrong one is counted towards the lock-out."""
    if not password:
        raise NotPermitted(f"{signer.badge} ({signer.name}): signing needs your password")
    _verify(session, signer.badge, password, "password", "signature_failed",
            policy or Policy())


def person_for(session: Session, badge: str) -> Person:
    """A human person by badge, for administration commands."""
    try:
        return _human(session, badge)
    except NotFound:
        raise NotFound(f"no person with badge {badge}") from None
