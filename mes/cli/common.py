"""What every `mes` command shares: errors as messages, the acting person, the database URL.

Commands own their transaction (services never commit): `acting_session` opens one per
command as the application role (`mes_app`), with the logged-in person named for the audit
log; `administration` opens one with the owner's rights, for plant data and people only.
After a commit, the audit records are sealed into the chain. A command prints what it did
only after its transaction has committed. `user_errors` turns what a user can act on
(`MesError` and the database's refusals) into a message and exit code 1; programming errors
keep their traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import psycopg
import typer
from psycopg import errors as pg_errors
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mes import login
from mes.acting import act_with_token, acting_with_token
from mes.acting import session as session
from mes.acting import transaction as transaction
from transactional.audit import acting
from transactional.errors import MesError, NotPermitted
from transactional.labor import person_by_badge
from transactional.models import Person
from transactional.permissions import ADMINISTRATION

P = ParamSpec("P")
R = TypeVar("R")

PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="read the password from the first line of standard input "
    "(for scripts) instead of asking for it")]


def fail(message: str) -> typer.Exit:
    """Print `message` as an error; raise the result to end the command with exit code 1."""
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def moment(option: str, value: str | None) -> dt.datetime | None:
    """The ISO 8601 time with a time zone given to `option`, or None when not given."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: {value!r} is not an ISO 8601 time like "
                   "2026-12-01T06:00+01:00") from None
    if parsed.tzinfo is None:
        raise fail(f"{option}: {value!r} has no time zone; add one, e.g. +01:00 or Z")
    return parsed


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can act on into a message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MesError as error:
            raise fail(str(error)) from None
        except IntegrityError as error:
            raise fail(f"the database refused the change, nothing was written: "
                       f"{error.orig}") from None
        except OperationalError as error:
            if isinstance(error.orig, pg_errors.ProgramLimitExceeded):
                raise fail(f"the database refused, nothing was written: {error.orig}") from None
            raise fail(f"cannot reach the database: {error.orig}") from None
        except DBAPIError as error:
            raise fail(f"the database refused, nothing was written: {error.orig}") from None
        except psycopg.OperationalError as error:
            raise fail(f"cannot reach the database: {error}") from None

    return wrapper


def read_password(prompt: str, from_stdin: bool) -> str:
    """A password from the terminal (not echoed) or the first line of standard input."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt(prompt, hide_input=True)
    return value


@contextmanager
def acting_session() -> Iterator[tuple[Session, Person]]:
    """One command, one transaction as the application role, acting as the person logged
    in (`mes login`): the session must be open and not idle past its timeout."""
    saved = login.saved()
    if saved is None:
        raise NotPermitted("nobody is logged in here: mes login BADGE")
    with acting_with_token(saved.token) as acted:
        yield acted


@contextmanager
def administration() -> Iterator[tuple[Session, Person]]:
    """One transaction with the owner's rights, for plant data and people: acting as the
    logged-in person (whose role the service checks), or as the `mes-admin` system account
    when nobody is logged in here (holding the owner's credentials is the authority)."""
    saved = login.saved()
    with transaction(owner=True) as opened:
        if saved is None:
            acting(opened, ADMINISTRATION)
            person = person_by_badge(opened, ADMINISTRATION)
        else:
            person = act_with_token(opened, saved.token)
        yield opened, person


def hidden(url: str) -> str:
    """The URL with its password masked, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def sample_plant() -> Path:
    """The sample plant file shipped with the package."""
    return Path(str(resources.files("mes") / "samples" / "plant.toml"))
