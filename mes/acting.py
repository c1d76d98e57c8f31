"""Transactions that act as a person: the command line and the operator station share them.

`transaction` opens one transaction as the application role (`mes_app`) and seals the audit
records it wrote after the commit; `acting_with_token` resumes a login's token in it, names
the person for the audit log and records how they logged in; `log_in` opens a login.
Where the token is kept (a file, a browser session) is the caller's business, not this one's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from mes.db import database_url, session_factory
from transactional import identity
from transactional.audit import acting, seal
from transactional.identity import Policy, resume
from transactional.models import Person
from transactional.permissions import APPLICATION_ROLE

SET_LOGIN_METHOD = text("SELECT set_config('mes.login_method', :method, true)")


def _as_application(opened: Session) -> None:
    """Every transaction of `opened` runs as the application role, not as the owner."""

    def set_role(_session: Any, _transaction: Any, connection: Any) -> None:
        connection.exec_driver_sql(f"SET LOCAL ROLE {APPLICATION_ROLE}")

    event.listen(opened, "after_begin", set_role)


@contextmanager
def session(*, owner: bool = False) -> Iterator[Session]:
    """A session on the configured database as the application role (the owner only for
    administration); the caller decides about transactions."""
    with session_factory(database_url())() as opened:
        if not owner:
            _as_application(opened)
        yield opened


@contextmanager
def transaction(*, owner: bool = False) -> Iterator[Session]:
    """One transaction, committed when the block ends without an error; the audit records
    it wrote are sealed into the chain afterwards."""
    with session(owner=owner) as opened:
        with opened.begin():
            yield opened
        seal(opened)


def act_with_token(opened: Session, token: str) -> Person:
    """In an open transaction: resume the login of `token` (NotPermitted when it ended or
    idled out), act as its person and record the login method; the person."""
    authenticated = resume(opened, token)
    acting(opened, authenticated.person.badge)
    opened.execute(SET_LOGIN_METHOD, {"method": authenticated.method})
    return authenticated.person


@contextmanager
def acting_with_token(token: str) -> Iterator[tuple[Session, Person]]:
    """One transaction as the application role, acting as the person logged in with
    `token`."""
    with transaction() as opened:
        yield opened, act_with_token(opened, token)


def log_in(badge: str, secret: str, *, method: str = "password",
           policy: Policy | None = None) -> tuple[str, Person]:
    """Authenticate `badge` in a transaction of its own (a refusal is recorded as a failed
    attempt); the new login's token and the person."""
    with transaction() as opened:
        token = identity.log_in(opened, badge, secret, method=method, policy=policy)
        person = identity.person_for(opened, badge)
    return token, person
