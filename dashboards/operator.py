"""What the operator station does, each in one transaction acting as the logged-in person
(`mes.acting`, as the command line does): log in and out, start, consume, inspect, report,
complete, classify a stop. The station keeps only the login's token; every rule is the services'."""

from __future__ import annotations

from dataclasses import dataclass

from mes import login
from mes.acting import acting_with_token, log_in, transaction
from mes.db import database_url
from pipelines.derive import derive_again, stop_of
from transactional import identity, orders, quality
from transactional.downtime import classify_stop
from transactional.labor import is_signed_on, machine_by_code, sign_on
from transactional.lots import consume
from transactional.models import DocumentRevision


@dataclass(frozen=True)
class Operator:
    badge: str
    name: str
    token: str


@dataclass(frozen=True)
class RunView:
    """A run as the station shows it: what to do, and what is still missing."""

    run_id: int
    status: str
    good: float
    scrap: float
    planned: float
    instruction: str | None
    instruction_revision: int | None
    missing: list[orders.MissingSamples]


def sign_in(badge: str, secret: str, *, pin: bool = False) -> Operator:
    """Log in with a password or PIN; NotPermitted (with the reason) when refused."""
    token, person = log_in(badge, secret, method="pin" if pin else "password",
                           policy=login.policy())
    return Operator(person.badge, person.name, token)


def sign_out(operator: Operator) -> None:
    with transaction() as opened:
        identity.log_out(opened, operator.token)


def start(operator: Operator, order: str, operation: str, machine: str) -> int:
    """Sign on at `machine` if not yet there, and start the operation; the run's number."""
    with acting_with_token(operator.token) as (opened, person):
        if not is_signed_on(opened, person.id, machine_by_code(opened, machine).id):
            sign_on(opened, person.badge, machine)
        return orders.start_run(opened, order, operation, machine, person.badge).id


def run_view(operator: Operator, run_id: int) -> RunView:
    with acting_with_token(operator.token) as (opened, _person):
        run = orders.run_by_id(opened, run_id)
        revision = (opened.get_one(DocumentRevision, run.document_revision_id)
                    if run.document_revision_id is not None else None)
        return RunView(run.id, run.status, float(run.good_quantity),
                       float(run.scrap_quantity), float(run.planned_quantity),
                       revision.content if revision else None,
                       revision.revision if revision else None,
                       orders.missing_samples(opened, run))


def consume_lot(operator: Operator, run_id: int, lot: str, quantity: float) -> float:
    """Take `quantity` from `lot` into the run; what is left of the lot."""
    with acting_with_token(operator.token) as (opened, person):
        return float(consume(opened, lot, quantity, run_id, person.id).quantity)


def inspect(operator: Operator, run_id: int, characteristic: str, sample: int,
            value: float, lot: str | None) -> list[str]:
    """Record a sample; the nonconformances it opened, described (empty within spec)."""
    with acting_with_token(operator.token) as (opened, person):
        outcome = quality.record_inspection(opened, run_id, characteristic, sample, value,
                                            person.badge, lot or None)
        return [quality.describe_nonconformance(opened, ncr)
                for ncr in outcome.nonconformances]


def report(operator: Operator, run_id: int, good: float, scrap: float) -> None:
    with acting_with_token(operator.token) as (opened, _person):
        orders.report(opened, run_id, good, scrap)


def complete(operator: Operator, run_id: int, lot: str | None, location: str | None) -> None:
    with acting_with_token(operator.token) as (opened, person):
        orders.complete_run(opened, run_id, person.badge, lot or None, location or None)


def classify(operator: Operator, event_id: int, reason: str, note: str | None) -> list[str]:
    """Give derived stop `event_id` its reason, then derive the days it touches again (as
    `mes downtime classify` does); those days, as ISO dates."""
    url = database_url()
    stop = stop_of(url, event_id)
    with acting_with_token(operator.token) as (opened, _person):
        classify_stop(opened, stop.equipment_id, stop.started_at, reason, note or None)
    derive_again(url, stop)
    return [day.isoformat() for day in stop.days]
