"""The one place that makes database engines and connection pools.

Callers pass a URL (usually from `database_url()`); nothing here holds global state
except the engine cache, so tests can point at a fresh database per test.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote, urlencode

from psycopg_pool import ConnectionPool
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from mes.localdb import LocalCluster
from mes.settings import Settings, get_settings


def database_url(settings: Settings | None = None) -> str:
    """The owner's psycopg URL: MES_DATABASE_URL, or the local cluster's when it is unset."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    return LocalCluster.from_settings(settings).url()


def sqlalchemy_url(url: str) -> str:
    """The same URL with the psycopg 3 driver named, as SQLAlchemy wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def psycopg_url(url: str) -> str:
    return _libpq(make_url(url).set(drivername="postgresql"))


def as_role(url: str, role: str) -> str:
    """The same URL (as libpq reads it), its connections acting as `role` from the start
    (`-c role=...`, as a SET ROLE would; the login must be a member of it): readers outside
    the ORM, such as the pipelines' ADBC connections, then hold only that role's rights."""
    parsed = make_url(url).set(drivername="postgresql")
    options = " ".join(filter(None, [str(parsed.query.get("options") or ""),
                                     f"-c role={role}"]))
    return _libpq(parsed.update_query_dict({"options": options}))


def _libpq(parsed: URL) -> str:
    """`parsed` as a libpq connection URI: query values percent-encoded, since libpq does
    not read `+` as a space (SQLAlchemy's rendering writes one)."""
    base = parsed.set(query={}).render_as_string(hide_password=False)
    query = urlencode(list(parsed.query.items()), doseq=True, quote_via=quote)
    return f"{base}?{query}" if query else base


@lru_cache(maxsize=16)
def engine(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine(url), expire_on_commit=False)


def connection_pool(url: str, settings: Settings | None = None) -> ConnectionPool:
    """A psycopg pool for paths that bypass the ORM (bulk COPY); the caller opens and closes it."""
    settings = settings or get_settings()
    return ConnectionPool(psycopg_url(url), min_size=settings.pool_min_size,
                          max_size=settings.pool_max_size, open=False)
