"""What a site's stream is called and holds, and the NATS connection both sides open.

One durable JetStream stream per site (`MES_SITE_<code>`, subjects `mes.site.<code>.*`); a
message is one table's slice of a forwarded batch, numbered per site without gaps. How
messages are made or stored is the forwarder's and the central ingest's business.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats
from nats.aio.client import Client
from nats.js import api

from transactional.errors import MesError

log = logging.getLogger("mes.sites.nats")

STREAM_PREFIX = "MES_SITE_"
# The forwarded tables, in the order a batch publishes them: facts first, so the central
# store knows a machine before its rows arrive.
FACTS = "facts"
ROW_TABLES = ("equipment_state", "production_count", "process_value")
KINDS = (FACTS, *ROW_TABLES)

# Headers of every message.
MESSAGE = "Mes-Message"  # the per-site message number: 1, 2, 3, ... without gaps
BATCH = "Mes-Batch"
ROWS = "Mes-Rows"
FORWARDED_AT = "Mes-Forwarded-At"  # wall-clock seconds when the forwarder sent it

_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SiteError(MesError):
    """A site or central setting is unusable, or NATS refuses what was asked."""


def check_site_code(code: str) -> str:
    if not _CODE.match(code):
        raise SiteError(f"site code {code!r}: use 1-32 letters, digits, '-' or '_' (it names "
                        "the site's NATS stream and subjects)")
    return code


@dataclass(frozen=True)
class SiteStream:
    code: str

    @property
    def name(self) -> str:
        return f"{STREAM_PREFIX}{self.code}"

    @property
    def subjects(self) -> str:
        return f"mes.site.{self.code}.*"

    def subject(self, kind: str) -> str:
        return f"mes.site.{self.code}.{kind}"

    def message_id(self, message: int) -> str:
        # JetStream drops a second message with the same id within its duplicate window.
        return f"{self.code}:{message}"

    @classmethod
    def from_name(cls, name: str) -> SiteStream | None:
        if not name.startswith(STREAM_PREFIX):
            return None
        code = name[len(STREAM_PREFIX):]
        return cls(code) if _CODE.match(code) else None


def stream_config(stream: SiteStream, max_age_seconds: float,
                  duplicate_window_seconds: float = 120) -> api.StreamConfig:
    # File storage: a NATS restart keeps every message. Limits retention, not work queue:
    # messages stay for max_age after the central store took them, so it can be fed again
    # from the stream (a restored central database, a new central replica).
    return api.StreamConfig(
        name=stream.name, subjects=[stream.subjects], storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS, max_age=max_age_seconds,
        duplicate_window=duplicate_window_seconds, discard=api.DiscardPolicy.OLD)


async def _connection_error(exc: Exception) -> None:
    # Each failed reconnect attempt lands here; the state change is reported once instead.
    log.debug("NATS connection: %s", exc)


async def connect(url: str, name: str,
                  on_change: Callable[[str], None] | None = None) -> Client:
    """A connection that keeps trying to reconnect for as long as the process runs;
    `on_change` hears "connected" and "disconnected"."""

    def telling(state: str) -> Callable[[], Awaitable[None]] | None:
        if on_change is None:
            return None
        report = on_change

        async def callback() -> None:
            report(state)

        return callback

    client = await nats.connect(
        servers=[url], name=name, connect_timeout=2, reconnect_time_wait=1,
        max_reconnect_attempts=-1, allow_reconnect=True, ping_interval=5,
        max_outstanding_pings=2, disconnected_cb=telling("disconnected"),
        reconnected_cb=telling("connected"), error_cb=_connection_error)
    if on_change is not None:
        on_change("connected")
    return client
