"""Executing work: dispatching, work orders, operation runs, inspections, nonconformances,
labor and work instructions (`mes dispatch`, `order`, `run`, `inspect`, `ncr`, `labor`,
`doc`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from mes.cli.common import (
    PasswordStdin,
    acting_session,
    fail,
    moment,
    read_password,
    session,
    user_errors,
)
from transactional import documents, orders, quality
from transactional.dispatch import dispatch_list, render
from transactional.labor import labor_hours, sign_off, sign_on
from transactional.lots import consume
from transactional.models import DocumentRevision

dispatch_app = typer.Typer(add_completion=False)
order_app = typer.Typer(no_args_is_help=True, add_completion=False)
run_app = typer.Typer(no_args_is_help=True, add_completion=False)
inspect_app = typer.Typer(add_completion=False)
ncr_app = typer.Typer(no_args_is_help=True, add_completion=False)
labor_app = typer.Typer(no_args_is_help=True, add_completion=False)
doc_app = typer.Typer(no_args_is_help=True, add_completion=False)

ORDER_COMMANDS = {"release": "released", "hold": "on_hold", "resume": "in_progress",
                  "complete": "completed", "close": "closed", "cancel": "cancelled"}


@dispatch_app.command("dispatch")
@user_errors
def dispatch(
    work_center: Annotated[str, typer.Option("--work-center", help="line code, e.g. L1")],
    at: Annotated[str | None, typer.Option(
        help="plan from this time, ISO 8601 with a time zone (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the list as JSON")] = False,
) -> None:
    """What to run next on a line's machines, in order, and what waits and why."""
    start = moment("--at", at)
    with session() as opened:
        plan = dispatch_list(opened, work_center, start)
    typer.echo(json.dumps(plan.as_json(), indent=1) if as_json else render(plan))


def _order_command(verb: str, to_status: str) -> None:
    @order_app.command(verb, help=f"Move a work order to {to_status.replace('_', ' ')}.")
    @user_errors
    def command(
        code: Annotated[str, typer.Argument(help="the order's code")],
        expected_version: Annotated[int | None, typer.Option(
            help="refuse if the order changed since you saw this version")] = None,
    ) -> None:
        with acting_session() as (opened, _person):
            order = orders.transition(opened, code, to_status, expected_version)
        typer.echo(f"order {code}: {order.status} (version {order.version})")


for _verb, _status in ORDER_COMMANDS.items():
    _order_command(_verb, _status)


@run_app.command("start")
@user_errors
def run_start(
    order: Annotated[str, typer.Argument(help="work order code")],
    operation: Annotated[str, typer.Argument(help="operation code of the order's routing")],
    machine: Annotated[str, typer.Argument(help="machine code")],
) -> None:
    """Start an operation of an order on a machine, as the operator logged in; shows the
    work instruction to follow."""
    served: DocumentRevision | None = None
    with acting_session() as (opened, person):
        run = orders.start_run(opened, order, operation, machine, person.badge)
        if run.document_revision_id is not None:
            served = opened.get_one(DocumentRevision, run.document_revision_id)
    typer.echo(f"run {run.id} started: operation {operation} of order {order} on "
               f"{machine}, operator {person.badge}, {run.planned_quantity:g} planned")
    if served is not None:
        typer.echo(f"work instruction, revision {served.revision}:\n{served.content}")


@run_app.command("report")
@user_errors
def run_report(
    run: Annotated[int, typer.Argument(help="the run's number")],
    good: Annotated[float, typer.Option(min=0, help="good units made")] = 0,
    scrap: Annotated[float, typer.Option(min=0, help="units scrapped")] = 0,
) -> None:
    """Add good and scrap quantities to a running run."""
    with acting_session() as (opened, _person):
        reported = orders.report(opened, run, good, scrap)
    typer.echo(f"run {run}: {reported.good_quantity:g} good, "
               f"{reported.scrap_quantity:g} scrap of {reported.planned_quantity:g} planned")


@run_app.command("correct")
@user_errors
def run_correct(
    run: Annotated[int, typer.Argument(help="the run's number")],
    good: Annotated[float, typer.Option(help="the good quantity really made")],
    scrap: Annotated[float, typer.Option(help="the scrap quantity really made")],
    reason: Annotated[str, typer.Option(help="why the reported figures were wrong")],
) -> None:
    """Correct a run's good and scrap quantities (supervisors), with the reason."""
    with acting_session() as (opened, _person):
        fixed = orders.correct_run(opened, run, good, scrap, reason)
    typer.echo(f"run {run}: corrected from {fixed.good_before:g} good, {fixed.scrap_before:g} "
               f"scrap to {fixed.good_after:g} good, {fixed.scrap_after:g} scrap")


@run_app.command("abort")
@user_errors
def run_abort(
    run: Annotated[int, typer.Argument(help="the run's number")],
    reason: Annotated[str, typer.Option(help="why the run ends without completing")],
) -> None:
    """Abort a running run (supervisors): it ends, counts for nothing, keeps its record."""
    with acting_session() as (opened, _person):
        orders.abort_run(opened, run, reason)
    typer.echo(f"run {run}: aborted ({reason})")


def _echo_actuals(opened: Session, run: int) -> None:
    actual = orders.run_performance(opened, run)
    hours = labor_hours(opened, run)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f} %"

    cycle = actual.actual_cycle_seconds
    typer.echo(f"run {run} ({actual.status}): {actual.good_quantity:g} good, "
               f"{actual.scrap_quantity:g} scrap of {actual.planned_quantity:g} planned "
               f"({pct(actual.quantity_deviation_pct)})")
    typer.echo(f"  cycle time {'-' if cycle is None else f'{cycle:.2f} s'} per good unit, "
               f"standard {actual.standard_cycle_seconds:g} s "
               f"({pct(actual.cycle_deviation_pct)})")
    typer.echo(f"  labor {hours.actual_hours:.2f} h by {hours.people} people, standard "
               f"{hours.standard_hours:.2f} h")


@run_app.command("consume")
@user_errors
def run_consume(
    run: Annotated[int, typer.Argument(help="the run's number")],
    lot: Annotated[str, typer.Argument(help="the lot the material comes from")],
    quantity: Annotated[float, typer.Argument(help="how much, in the material's unit")],
) -> None:
    """Take material from an available lot into a running run (only a material the
    operation's bill of materials asks for)."""
    with acting_session() as (opened, person):
        taken = consume(opened, lot, quantity, run, person.id)
    typer.echo(f"run {run}: {quantity:g} taken from lot {lot}, {taken.quantity:g} left "
               f"({taken.status})")


@run_app.command("complete")
@user_errors
def run_complete(
    run: Annotated[int, typer.Argument(help="the run's number")],
    lot: Annotated[str | None, typer.Option(help="make the good quantity into this new lot")]
    = None,
    location: Annotated[str | None, typer.Option(help="where the new lot goes")] = None,
) -> None:
    """Complete a run (refused until its inspections have their samples)."""
    with acting_session() as (opened, person):
        orders.complete_run(opened, run, person.badge, lot, location)
    with session() as opened:
        _echo_actuals(opened, run)
    if lot is not None:
        typer.echo(f"  output lot {lot}")


@run_app.command("show")
@user_errors
def run_show(run: Annotated[int, typer.Argument(help="the run's number")]) -> None:
    """A run's quantities, cycle time and labor against plan and standard."""
    with session() as opened:
        _echo_actuals(opened, run)


@inspect_app.command("inspect")
@user_errors
def inspect_sample(
    run: Annotated[int, typer.Argument(help="the run's number")],
    characteristic: Annotated[str, typer.Argument(help="as the inspection plan names it")],
    sample: Annotated[int, typer.Argument(help="sample number, from 1")],
    value: Annotated[float, typer.Argument(help="the measured value")],
    lot: Annotated[str | None, typer.Option(help="the lot the sample was taken from")] = None,
) -> None:
    """Record a measured sample; out of spec, the lot goes on hold and an NCR opens."""
    with acting_session() as (opened, person):
        outcome = quality.record_inspection(opened, run, characteristic, sample, value,
                                            person.badge, lot)
        flagged = [quality.describe_nonconformance(opened, ncr)
                   for ncr in outcome.nonconformances]
    if outcome.result.within_spec:
        typer.echo(f"run {run}: '{characteristic}' sample {sample} = {value:g}, within spec")
    for line in flagged:
        typer.echo(f"OUT OF SPEC: {line}")


@ncr_app.command("disposition")
@user_errors
def ncr_disposition(
    code: Annotated[str, typer.Argument(help="the nonconformance, e.g. NCR-000012")],
    decision: Annotated[str, typer.Argument(help="use_as_is, rework or scrap")],
    meaning: Annotated[str, typer.Option(help="what your signature means, in words")],
    comment: Annotated[str | None, typer.Option(help="why")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Decide a nonconformance (quality), signed electronically: shows what you sign and
    asks for your password again."""
    chosen = decision.replace("-", "_")
    with acting_session() as (opened, person):
        ncr = quality.ncr_by_code(opened, code)
        typer.echo(f"You are signing: {quality.describe_nonconformance(opened, ncr)}\n"
                   f"  decision {chosen}" + (f", comment '{comment}'" if comment else "")
                   + f"\n  as {person.name} ({person.badge}), meaning '{meaning}'", err=True)
        password = read_password(f"password of {person.badge} to sign", password_stdin)
        decided = quality.disposition(opened, code, chosen, meaning, comment,
                                      password=password)
        manifest = quality.signature_manifest(opened, decided.signature_id)
    typer.echo(f"{code}: {decided.decision}, signature {decided.signature_id} "
               f"{manifest.line()}")


@ncr_app.command("show")
@user_errors
def ncr_show(code: Annotated[str, typer.Argument(help="the nonconformance")]) -> None:
    """A nonconformance with its disposition and the signature's manifest."""
    with session() as opened:
        typer.echo(quality.describe_disposition(opened, code))


@ncr_app.command("verify")
@user_errors
def ncr_verify(code: Annotated[str, typer.Argument(help="the nonconformance")]) -> None:
    """Check that a dispositioned nonconformance is unchanged since it was signed."""
    with session() as opened:
        check = quality.verify_signature(opened, quality.signature_of(opened, code))
    if not check.intact:
        raise fail(check.detail)
    typer.echo(check.detail)


@labor_app.command("on")
@user_errors
def labor_on(
    badge: Annotated[str, typer.Argument(help="who signs on (someone else: supervisors)")],
    machine: Annotated[str, typer.Argument(help="at which machine")],
) -> None:
    """Sign a person on at a machine."""
    with acting_session() as (opened, _person):
        sign_on(opened, badge, machine)
    typer.echo(f"{badge} signed on at {machine}")


@labor_app.command("off")
@user_errors
def labor_off(
    badge: Annotated[str, typer.Argument(help="who signs off (someone else: supervisors)")],
) -> None:
    """Sign a person off wherever they are signed on."""
    with acting_session() as (opened, _person):
        closed = sign_off(opened, badge)
    assert closed.signed_off_at is not None
    hours = (closed.signed_off_at - closed.signed_on_at).total_seconds() / 3600
    typer.echo(f"{badge} signed off after {hours:.2f} h")


@doc_app.command("add")
@user_errors
def doc_add(
    code: Annotated[str, typer.Argument(help="the document's code, e.g. WI-PRESS")],
    content: Annotated[Path, typer.Argument(
        help="file with the revision's text", exists=True, dir_okay=False)],
    title: Annotated[str | None, typer.Option(help="for a new document")] = None,
) -> None:
    """Add a draft revision of a work instruction."""
    with acting_session() as (opened, _person):
        revision = documents.add_revision(opened, code, content.read_text(), title)
    typer.echo(f"{code} revision {revision.revision}: draft")


@doc_app.command("release")
@user_errors
def doc_release(
    code: Annotated[str, typer.Argument(help="the document's code")],
    revision: Annotated[int, typer.Argument(help="the draft revision to release")],
) -> None:
    """Release a draft revision; the one released before is superseded."""
    with acting_session() as (opened, person):
        documents.release(opened, code, revision, person.badge)
    typer.echo(f"{code} revision {revision}: released")


@doc_app.command("show")
@user_errors
def doc_show(code: Annotated[str, typer.Argument(help="the document's code")]) -> None:
    """The revision operators are served now."""
    with session() as opened:
        served = documents.served_revision(opened, code)
        typer.echo(f"{code} revision {served.revision}:\n{served.content}")
