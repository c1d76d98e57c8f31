"""The company trace: a lot made at one site, shipped to another and made into a finished
lot there is traced both ways on the central store, after the real forward path."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from mes.natsd import LocalNats
from mes.settings import get_settings
from tests.sites.sites import forwarding
from tests.transactional.shop_floor import (
    CERTIFIED,
    acting_as,
    build,
    material_id,
    person_id,
    stamping_run,
)
from transactional import lots
from transactional.company_trace import CompanyLink, company_trace
from transactional.errors import NotFound, RuleViolation
from transactional.models import BomItem

_LOTS = "SELECT code, status, quantity, origin_site, shipped_to_site FROM {} ORDER BY code"
_LINKS = "SELECT parent_lot_id, child_lot_id, kind FROM {} ORDER BY 1, 2"


def _held(url: str, site: str | None = None) -> tuple[list[Any], list[Any]]:
    """A site's lots and genealogy links, or (`site`) the central store's copy of them."""
    where = "" if site is None else (
        " WHERE site_id = (SELECT id FROM central.site WHERE code = %(site)s)")
    schema = "mes" if site is None else "central"
    with psycopg.connect(url) as conn:
        return ([tuple(r) for r in conn.execute(
                    _LOTS.format(f"{schema}.material_lot{where}"), {"site": site})],
                [tuple(r) for r in conn.execute(
                    _LINKS.format(f"{schema}.genealogy_link{where}"), {"site": site})])


def _site_a(session: Session) -> None:
    """Raw coil received, stamped into an intermediate lot, which is shipped to site B;
    another intermediate lot shipped to site C."""
    build(session)
    run = stamping_run(session)
    with session.begin():
        who = person_id(session, CERTIFIED)
    with acting_as(session, CERTIFIED):
        lots.receive(session, "COIL-1", "STEEL-COIL", 100, "WIP-L1", who)
    with acting_as(session, CERTIFIED):
        lots.consume(session, "COIL-1", 40, run, who)
        lots.produce(session, "INT-1", "BRACKET-RAW", 100, "WIP-L1", run, who)
    with acting_as(session, CERTIFIED):
        lots.ship(session, "INT-1", "B", who)
        lots.receive(session, "INT-2", "BRACKET-RAW", 50, "WIP-L1", who)
        lots.ship(session, "INT-2", "C", who)


def _site_b(session: Session) -> None:
    """The intermediate lot received from site A and made into a finished lot; a coil
    with the code of site A's coil, received from a supplier (no shipment); a lot said to
    come from site A that site A shipped elsewhere."""
    floor = build(session)
    run = stamping_run(session)
    with session.begin():
        who = person_id(session, CERTIFIED)
    with acting_as(session, "mes-admin"):
        session.add(BomItem(operation_id=floor.stamping_id,
                            material_id=material_id(session, "BRACKET-RAW"),
                            quantity_per_unit=1))
    with acting_as(session, CERTIFIED):
        lots.receive(session, "INT-1", "BRACKET-RAW", 100, "WIP-L1", who, from_site="A")
        lots.receive(session, "COIL-1", "STEEL-COIL", 10, "WIP-L1", who)
        lots.receive(session, "INT-2", "BRACKET-RAW", 50, "WIP-L1", who, from_site="A")
    with acting_as(session, CERTIFIED):
        lots.consume(session, "INT-1", 100, run, who)
        lots.produce(session, "FIN-1", "BRACKET-RAW", 100, "WIP-L1", run, who,
                     parent_lot_codes=["INT-1"])


@pytest.fixture
def central(databases: Callable[[], str], nats_server: LocalNats) -> str:
    """A central store holding sites A and B as above, forwarded through NATS JetStream."""
    site_a, site_b, central = databases(), databases(), databases()
    for url, work in ((site_a, _site_a), (site_b, _site_b)):
        with session_factory(url)() as session:
            work(session)

    asyncio.run(_forward({"A": site_a, "B": site_b}, central, nats_server.url))
    assert _held(central, "A") == _held(site_a)
    assert _held(central, "B") == _held(site_b)
    return central


async def _forward(sites: dict[str, str], central: str, nats_url: str) -> None:
    """Forward until the central store holds every site's lots and links."""
    async with forwarding(sites, central, nats_url):
        for _ in range(300):
            held = [(await asyncio.to_thread(_held, central, code),
                     await asyncio.to_thread(_held, url)) for code, url in sites.items()]
            if all(there == here for there, here in held):
                return
            await asyncio.sleep(0.1)


SHIPPED = [CompanyLink(("A", "COIL-1"), ("A", "INT-1"), "consumed", 40),
           CompanyLink(("A", "INT-1"), ("B", "INT-1"), "shipped", None),
           CompanyLink(("B", "INT-1"), ("B", "FIN-1"), "consumed", 100)]


def test_the_company_trace_follows_a_lot_shipped_between_sites_both_ways(central: str) -> None:
    with session_factory(central)() as session:
        forward = company_trace(session, "COIL-1", "A", ("forward",))
        backward = company_trace(session, "FIN-1", None, ("backward",))

    assert list(forward.links["forward"]) == SHIPPED
    assert list(backward.links["backward"]) == SHIPPED
    assert sorted(backward.lots) == [("A", "COIL-1"), ("A", "INT-1"), ("B", "FIN-1"),
                                     ("B", "INT-1")]
    shipped, arrived = backward.lots[("A", "INT-1")], backward.lots[("B", "INT-1")]
    assert (shipped.status, shipped.quantity, shipped.shipped_to_site) == ("shipped", 0, "B")
    assert (arrived.status, arrived.quantity, arrived.origin_site) == ("consumed", 0, "A")
    assert backward.lots[("B", "FIN-1")].status == "available"


def test_a_lot_code_at_two_sites_without_a_shipment_is_not_joined(central: str) -> None:
    with session_factory(central)() as session:
        at_b = company_trace(session, "COIL-1", "B")
        elsewhere = company_trace(session, "INT-2", "A")
        claimed = company_trace(session, "INT-2", "B")
        with pytest.raises(RuleViolation, match="lot COIL-1 is at sites A, B: name one with "
                                                "--site"):
            company_trace(session, "COIL-1")
        with pytest.raises(NotFound, match="no lot COIL-1 at site C in the central store"):
            company_trace(session, "COIL-1", "C")

    assert at_b.links == {"backward": (), "forward": ()}
    assert list(at_b.lots) == [("B", "COIL-1")]
    assert elsewhere.links == claimed.links == {"backward": (), "forward": ()}


def test_mes_trace_company_names_the_site_of_every_lot(
        central: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_DATABASE_URL", central)
    get_settings.cache_clear()
    runner = CliRunner()

    result = runner.invoke(app, ["trace", "FIN-1", "--company", "--backward"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:5] == [
        "company trace of lot FIN-1 at site B",
        "backward (where it came from):",
        "  site A lot COIL-1 --consumed 40--> site A lot INT-1",
        "  site A lot INT-1 --shipped--> site B lot INT-1",
        "  site B lot INT-1 --consumed 100--> site B lot FIN-1"]
    assert "  site A lot INT-1: 0 pcs of BRACKET-RAW, shipped, shipped to site B" \
        in result.output
    assert "  site B lot INT-1: 0 pcs of BRACKET-RAW, consumed, from site A" in result.output

    wrong = runner.invoke(app, ["trace", "INT-1", "--site", "A"])
    assert wrong.exit_code != 0 and "--site is for a company trace" in wrong.output


def test_the_company_trace_on_a_site_database_says_where_to_run_it(
        databases: Callable[[], str]) -> None:
    with session_factory(databases())() as session, pytest.raises(
            NotFound, match="this database holds no site's rows: run the company trace "
                            "against the central store"):
        company_trace(session, "COIL-1")
