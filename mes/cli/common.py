"""What every `mes` command shares: errors as messages, the acting person, the database URL.

Commands own their transaction (services never commit): `acting_session` opens one per
command with the acting person named for the audit log. `user_errors` turns what a user
can act on (`MesError` and the database's refusals) into a message and exit code 1;
programming errors keep their traceback.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import psycopg
import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from mes.db import database_url, session_factory
from transactional.audit import acting
from transactional.errors import MesError
from transactional.labor import person_by_badge
from transactional.models import Person

P = ParamSpec("P")
R = TypeVar("R")

By = Annotated[str, typer.Option(
    "--by", metavar="BADGE", help="badge of the person acting (the audit log names them)")]


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
            raise fail(f"cannot reach the database: {error.orig}") from None
        except DBAPIError as error:
            raise fail(f"the database refused, nothing was written: {error.orig}") from None
        except psycopg.OperationalError as error:
            raise fail(f"cannot reach the database: {error}") from None

    return wrapper


@contextmanager
def session() -> Iterator[Session]:
    """A session on the configured database; the caller decides about transactions."""
    with session_factory(database_url())() as opened:
        yield opened


@contextmanager
def transaction() -> Iterator[Session]:
    """One command, one transaction, committed when the block ends without an error."""
    with session() as opened, opened.begin():
        yield opened


@contextmanager
def acting_session(badge: str) -> Iterator[tuple[Session, Person]]:
    """One command, one transaction, with the person wearing `badge` named as who acts
    (the audit log's actor)."""
    with transaction() as opened:
        person = person_by_badge(opened, badge)
        acting(opened, badge)
        yield opened, person


def hidden(url: str) -> str:
    """The URL with its password masked, for printing."""
    return make_url(url).render_as_string(hide_password=True)


def sample_plant() -> Path:
    """The sample plant file shipped with the package."""
    return Path(str(resources.files("mes") / "samples" / "plant.toml"))
