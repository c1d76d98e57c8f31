"""`mes site forward|status` and `mes central ingest|status`: many sites, one central store.

A site's forwarder reads its own database (MES_DATABASE_URL or the local cluster) and
publishes to NATS (MES_NATS_URL); the central ingest reads every site's stream and writes
into its own database, the central store. Both run until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import psycopg
import typer

from ingest.aio import stop_on_signals
from ingest.sites import queries
from ingest.sites.central import CentralIngest, deliver_again
from ingest.sites.forward import Forwarder
from ingest.sites.streams import SiteError, check_site_code
from mes.cli.common import user_errors
from mes.db import database_url, psycopg_url
from mes.settings import Settings, get_settings

site_app = typer.Typer(no_args_is_help=True, add_completion=False)
central_app = typer.Typer(no_args_is_help=True, add_completion=False)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("nats").setLevel(logging.CRITICAL)


def site_code(settings: Settings, url: str, given: str | None) -> str:
    """The site's code: given, MES_SITE_CODE, or the plant model's one site."""
    code = given or settings.site_code
    if code is None:
        with psycopg.connect(url) as conn:
            sites = [row[0] for row in conn.execute(queries.PLANT_SITES).fetchall()]
        if len(sites) != 1:
            raise SiteError(
                f"the plant model has {len(sites)} sites ({', '.join(sites) or 'none'}): name "
                "this one with --site or MES_SITE_CODE")
        code = sites[0]
    return check_site_code(code)


@site_app.command("forward")
@user_errors
def forward(site: Annotated[str | None, typer.Option(
        help="this site's code (default: MES_SITE_CODE, else the plant model's one site)")
        ] = None) -> None:
    """Forward this site's new time-series rows and fact changes to its NATS JetStream
    stream, until SIGTERM or Ctrl-C. Collecting goes on while NATS or the link is away."""
    settings = get_settings()
    url = psycopg_url(database_url(settings))
    forwarder = Forwarder(
        url, settings.nats_url, site_code(settings, url, site),
        interval_seconds=settings.forward_interval_ms / 1000,
        message_rows=settings.forward_message_rows,
        stream_max_age_seconds=settings.stream_max_age_days * 86400)
    _logging()

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await forwarder.run(stop)

    asyncio.run(main())
    health = forwarder.health
    typer.echo(f"stopped: {health.rows} rows in {health.messages} messages forwarded")


@site_app.command("status")
@user_errors
def site_status() -> None:
    """How far this site's forwarder is: the last message JetStream acknowledged."""
    with psycopg.connect(psycopg_url(database_url())) as conn:
        rows = conn.execute(queries.FORWARD_STATUS).fetchall()
    if not rows:
        typer.echo("nothing forwarded yet: `mes site forward` has not run on this database")
    for code, message, pending, updated in rows:
        state = "a batch in flight" if pending else "caught up"
        typer.echo(f"site {code}: {message} messages published, {state} at "
                   f"{updated:%Y-%m-%d %H:%M:%S%z}")


@central_app.command("ingest")
@user_errors
def ingest(sites: Annotated[list[str] | None, typer.Option(
        "--site", help="only this site's stream (repeat for more); default: every site "
                       "stream on the NATS server, new ones as they appear")] = None) -> None:
    """Write every site's stream into this database's central store (schema `central`),
    each message once and in order, until SIGTERM or Ctrl-C."""
    settings = get_settings()
    codes = tuple(check_site_code(code) for code in sites or ())
    central = CentralIngest(psycopg_url(database_url(settings)), settings.nats_url, codes)
    _logging()

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await central.run(stop)

    asyncio.run(main())
    for code, health in sorted(central.health.sites.items()):
        typer.echo(f"site {code}: {health.rows} rows in {health.messages} messages stored, "
                   f"{health.replays} replays skipped")


@central_app.command("status")
@user_errors
def central_status() -> None:
    """Each site in the central store: its last message stored, and when."""
    with psycopg.connect(psycopg_url(database_url())) as conn:
        rows = conn.execute(queries.CENTRAL_STATUS).fetchall()
    if not rows:
        typer.echo("no site has sent anything yet")
    for code, message, sequence, applied in rows:
        typer.echo(f"site {code}: message {message or 0} (stream sequence {sequence or '-'}) "
                   f"stored at {applied:%Y-%m-%d %H:%M:%S%z}" if applied else
                   f"site {code}: nothing stored")


@central_app.command("replay")
@user_errors
def replay(site: Annotated[str, typer.Option(help="the site whose stream to deliver again")]
           ) -> None:
    """Deliver a site's whole stream (what NATS still keeps) to the central store again, on
    the next `mes central ingest`; messages already stored are skipped, by their number."""
    code = check_site_code(site)
    removed = asyncio.run(deliver_again(get_settings().nats_url, code))
    typer.echo(f"site {code}: the stream is delivered again from its start"
               if removed else f"site {code}: no consumer yet: the stream is delivered from "
                               "its start anyway")
