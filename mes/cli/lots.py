"""`mes lot` and `mes trace`: material lots and their genealogy."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mes.cli.common import acting_session, administration, moment, user_errors
from mes.cli.common import session as opened_session
from transactional import company_trace, lots
from transactional.exposure import exposed_lots
from transactional.exposure import render as render_exposure
from transactional.genealogy import DIRECTIONS, Direction, render, trace

lot_app = typer.Typer(no_args_is_help=True, add_completion=False)
trace_app = typer.Typer(add_completion=False)


def _split_parts(parts: list[str]) -> list[tuple[str, float]]:
    parsed: list[tuple[str, float]] = []
    for part in parts:
        code, equals, quantity = part.partition("=")
        try:
            parsed.append((code.strip(), float(quantity)))
        except ValueError:
            equals = ""
        if not equals or not code.strip():
            raise typer.BadParameter(f"{part!r}: write each new lot as CODE=QUANTITY",
                                     param_hint="--into")
    return parsed


@lot_app.command("location")
@user_errors
def lot_location(
    code: Annotated[str, typer.Argument(help="the storage location's code")],
    name: Annotated[str, typer.Option(help="what people call it")] = "",
) -> None:
    """Add a storage location (a rack, a line-side buffer, the quarantine cage)."""
    with administration() as (session, _person):
        lots.add_location(session, code, name)
    typer.echo(f"storage location {code} added")


@lot_app.command("receive")
@user_errors
def lot_receive(
    code: Annotated[str, typer.Argument(help="the new lot's code")],
    material: Annotated[str, typer.Option(help="material code, e.g. STEEL-COIL")],
    quantity: Annotated[float, typer.Option(help="in the material's unit")],
    location: Annotated[str, typer.Option(help="storage location code")],
    from_site: Annotated[str | None, typer.Option(
        help="the site that shipped it (the lot keeps the code it had there)")] = None,
) -> None:
    """Receive a lot of material into a storage location (bought, or shipped from another
    site of the company)."""
    with acting_session() as (session, person):
        lot = lots.receive(session, code, material, quantity, location, person.id,
                           from_site=from_site)
        shown = f"received {lots.describe(session, lot)}"
    typer.echo(shown)


@lot_app.command("ship")
@user_errors
def lot_ship(
    code: Annotated[str, typer.Argument(help="the lot to ship, whole")],
    to_site: Annotated[str, typer.Option(help="the receiving site's code")],
) -> None:
    """Ship a whole available lot to another site of the company (it receives it with
    `mes lot receive CODE --from-site THIS-SITE`)."""
    with acting_session() as (session, person):
        lot = lots.ship(session, code, to_site, person.id)
        shown = f"shipped {lots.describe(session, lot)}"
    typer.echo(shown)


@lot_app.command("split")
@user_errors
def lot_split(
    code: Annotated[str, typer.Argument(help="the lot to split")],
    into: Annotated[list[str], typer.Option(
        metavar="CODE=QUANTITY", help="a new lot and its quantity; repeat for each")],
) -> None:
    """Split quantities off a lot into new lots (same place, same status)."""
    parts = _split_parts(into)
    with acting_session() as (session, person):
        children = lots.split(session, code, parts, person.id)
        shown = "\n".join([*(f"new {lots.describe(session, lot)}" for lot in children),
                           f"left {lots.describe(session, code)}"])
    typer.echo(shown)


@lot_app.command("merge")
@user_errors
def lot_merge(
    codes: Annotated[list[str], typer.Argument(help="the lots to merge, whole")],
    into: Annotated[str, typer.Option(help="the new lot's code")],
) -> None:
    """Merge whole lots of one material, status and location into a new lot."""
    with acting_session() as (session, person):
        lot = lots.merge(session, codes, into, person.id)
        shown = f"merged {', '.join(codes)} into {lots.describe(session, lot)}"
    typer.echo(shown)


@lot_app.command("move")
@user_errors
def lot_move(
    code: Annotated[str, typer.Argument(help="the lot to move")],
    location: Annotated[str, typer.Argument(help="where it goes")],
) -> None:
    """Move a whole lot to another storage location."""
    with acting_session() as (session, person):
        lot = lots.move(session, code, location, person.id)
        shown = f"moved {lots.describe(session, lot)}"
    typer.echo(shown)


@lot_app.command("status")
@user_errors
def lot_status(
    code: Annotated[str, typer.Argument(help="the lot")],
    status: Annotated[str, typer.Argument(
        help="available, on_hold, quarantined or scrapped")],
) -> None:
    """Hold, quarantine, release or scrap a lot."""
    with acting_session() as (session, person):
        lot = lots.set_status(session, code, status, person.id)
        shown = lots.describe(session, lot)
    typer.echo(shown)


@lot_app.command("exposed")
@user_errors
def lot_exposed(
    signal: Annotated[str, typer.Option(help="a process value's code, e.g. PRESS-1.temperature")],
    since: Annotated[str | None, typer.Option(
        "--from", help="from this time (ISO 8601 with a zone; default: all history)")] = None,
    until: Annotated[str | None, typer.Option(
        "--to", help="up to this time (default: now)")] = None,
    hold: Annotated[bool, typer.Option(
        "--hold", help="put the lots still available on hold, as the person logged in")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Every lot made while a process value was out of its limits, and every lot made from
    one of them since (the reverse of a trace); optionally put them on hold."""
    start, end = moment("--from", since), moment("--to", until)
    if hold:
        with acting_session() as (session, person):
            found = exposed_lots(session, signal, start, end, person.id)
    else:
        with opened_session() as session:
            found = exposed_lots(session, signal, start, end)
    typer.echo(json.dumps(found.to_json(), indent=1) if as_json else render_exposure(found))


@trace_app.command("trace")
@user_errors
def trace_lot(
    lot: Annotated[str, typer.Argument(help="the lot's code")],
    forward: Annotated[bool, typer.Option(
        "--forward", help="only where it went: the lots made from it (a recall)")] = False,
    backward: Annotated[bool, typer.Option(
        "--backward", help="only where it came from: its ingredients")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    company: Annotated[bool, typer.Option(
        "--company", help="across every site, in the central store (MES_DATABASE_URL), "
        "following lots shipped between sites")] = False,
    site: Annotated[str | None, typer.Option(
        help="with --company: the site of the lot, when its code is at more than one")
    ] = None,
) -> None:
    """A lot's whole genealogy, with the machine, operator, order and inspections of each
    run on the way (both directions unless one is asked for).

    With --company, on the central store: across its sites, following lots shipped
    between them, naming the site of every lot."""
    directions: tuple[Direction, ...] = DIRECTIONS
    if forward != backward:
        directions = ("forward",) if forward else ("backward",)
    if site is not None and not company:
        raise typer.BadParameter("--site is for a company trace: add --company",
                                 param_hint="--site")
    if company:
        with opened_session() as session:
            across = company_trace.company_trace(session, lot, site, directions)
        typer.echo(json.dumps(across.to_json(), indent=1) if as_json
                   else company_trace.render(across))
        return
    with opened_session() as session:
        found = trace(session, lot, directions)
    typer.echo(json.dumps(found.to_json(), indent=1) if as_json else render(found))
