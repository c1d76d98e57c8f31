"""Quality while work happens: inspection results against the plan's spec limits, the
automatic hold and nonconformance of a result out of spec, and the disposition of a
nonconformance under an electronic signature bound to the record it signs.

SPC charts and genealogy traces for a recall are read elsewhere; this module only writes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, get_args

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from transactional.errors import IllegalTransition, NotFound, RuleViolation
from transactional.identity import confirm_signer
from transactional.labor import person_by_badge
from transactional.lookup import by_code
from transactional.lots import set_status as set_lot_status
from transactional.models import (
    Decision,
    Disposition,
    ElectronicSignature,
    Equipment,
    InspectionPlan,
    InspectionResult,
    LotMovement,
    MaterialLot,
    Nonconformance,
    OperationRun,
    Person,
    RoutingOperation,
    WorkOrder,
)
from transactional.permissions import Action, require

DECISIONS: tuple[Decision, ...] = get_args(Decision)
# Lots a hold still means something for: not yet consumed into another lot or scrapped.
HOLDABLE = ("available", "on_hold", "quarantined")
NEXT_NCR_ID = text("SELECT nextval(pg_get_serial_sequence('mes.nonconformance', 'id'))")


@dataclass(frozen=True)
class InspectionOutcome:
    result: InspectionResult
    # Opened by a result out of spec: one per affected lot, or one without a lot.
    nonconformances: list[Nonconformance] = field(default_factory=list)
    held_lots: list[str] = field(default_factory=list)


def _run(session: Session, run_id: int) -> OperationRun:
    run = session.get(OperationRun, run_id, populate_existing=True)
    if run is None:
        raise NotFound(f"no operation run {run_id}")
    return run


def lot_by_code(session: Session, code: str) -> MaterialLot:
    return by_code(session, MaterialLot, code, what="material lot", lock=True)


def _plan(session: Session, run: OperationRun, characteristic: str) -> InspectionPlan:
    plans = {p.characteristic: p for p in session.scalars(
        select(InspectionPlan).where(InspectionPlan.operation_id == run.operation_id))}
    if characteristic not in plans:
        operation = session.get_one(RoutingOperation, run.operation_id)
        known = ", ".join(f"'{name}'" for name in sorted(plans)) or "none"
        raise NotFound(f"operation {operation.code} has no inspection '{characteristic}' "
                       f"(its inspections: {known})")
    return plans[characteristic]


def _hold(session: Session, lot: MaterialLot, person: Person) -> bool:
    if lot.status != "available":
        return False
    set_lot_status(session, lot.code, "on_hold", person.id)
    return True


def record_inspection(session: Session, run_id: int, characteristic: str, sample_number: int,
                      measured: float, by_badge: str,
                      lot_code: str | None = None) -> InspectionOutcome:
    """Record one measured sample of a running run. Out of spec, the affected lot (the one
    given, else those the run has produced so far) goes on hold at once and a
    nonconformance is opened. A lot given must be one the run consumed or produced."""
    require(session, Action.RECORD_INSPECTION)
    inspector = person_by_badge(session, by_badge)
    run = _run(session, run_id)
    if run.status != "running":
        raise IllegalTransition(f"run {run_id} is {run.status}: inspections are recorded "
                                "while it runs")
    plan = _plan(session, run, characteristic)
    if sample_number < 1:
        raise RuleViolation(f"sample numbers start at 1 (got {sample_number})")
    if not math.isfinite(measured):
        raise RuleViolation(f"run {run_id}: '{characteristic}' measured {measured}: not a "
                            "measurement")
    taken = session.scalar(select(InspectionResult.id).where(
        InspectionResult.run_id == run.id, InspectionResult.plan_id == plan.id,
        InspectionResult.sample_number == sample_number))
    if taken is not None:
        raise RuleViolation(f"run {run_id}: sample {sample_number} of '{characteristic}' is "
                            "already recorded")
    lot = lot_by_code(session, lot_code) if lot_code is not None else None
    if lot is not None:
        _of_the_run(session, run, lot)
    within = plan.lower_spec <= measured <= plan.upper_spec
    result = InspectionResult(run_id=run.id, plan_id=plan.id, sample_number=sample_number,
                              measured=measured, within_spec=within,
                              lot_id=lot.id if lot else None, recorded_by=inspector.id)
    session.add(result)
    session.flush()
    if within:
        return InspectionOutcome(result)

    affected: list[MaterialLot | None]
    if lot is not None:
        affected = [lot]
    else:
        produced = list(session.scalars(
            select(MaterialLot)
            .where(MaterialLot.produced_by_run_id == run.id, MaterialLot.status.in_(HOLDABLE))
            .order_by(MaterialLot.id).with_for_update(key_share=True)
            .execution_options(populate_existing=True)))
        affected = list(produced) or [None]
    held = [held_lot.code for held_lot in affected
            if held_lot is not None and _hold(session, held_lot, inspector)]
    opened = []
    for affected_lot in affected:
        ncr_id = session.execute(NEXT_NCR_ID).scalar_one()
        ncr = Nonconformance(
            id=ncr_id, code=f"NCR-{ncr_id:06d}", inspection_result_id=result.id,
            run_id=run.id, work_order_id=run.work_order_id, equipment_id=run.equipment_id,
            operator_id=run.operator_id, lot_id=affected_lot.id if affected_lot else None,
            characteristic=characteristic, measured=measured, lower_spec=plan.lower_spec,
            upper_spec=plan.upper_spec)
        session.add(ncr)
        opened.append(ncr)
    session.flush()
    for ncr in opened:
        session.refresh(ncr)
    return InspectionOutcome(result, opened, held)


def _of_the_run(session: Session, run: OperationRun, lot: MaterialLot) -> None:
    """Refuse a lot that is neither the run's input (consumed into it) nor its output."""
    if lot.produced_by_run_id == run.id:
        return
    consumed = session.scalar(
        select(LotMovement.id).where(LotMovement.lot_id == lot.id, LotMovement.run_id == run.id,
                                     LotMovement.kind == "consume").limit(1))
    if consumed is None:
        raise RuleViolation(f"lot {lot.code} is neither an input nor an output of run {run.id}: "
                            "an inspection of this run cannot hold it")


def hold_for_open_nonconformances(session: Session, run: OperationRun, lot: MaterialLot,
                                  person: Person) -> list[str]:
    """A lot the run makes after a result out of spec, while no lot was there to hold,
    goes on hold too and becomes the lot of those nonconformances. Their codes."""
    waiting = list(session.scalars(
        select(Nonconformance)
        .where(Nonconformance.run_id == run.id, Nonconformance.status == "open",
               Nonconformance.lot_id.is_(None))
        .order_by(Nonconformance.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)))
    if not waiting:
        return []
    _hold(session, lot, person)
    for ncr in waiting:
        ncr.lot_id = lot.id
    session.flush()
    return [ncr.code for ncr in waiting]


def ncr_by_code(session: Session, code: str, *, lock: bool = False) -> Nonconformance:
    return by_code(session, Nonconformance, code, what="nonconformance", lock=lock)


def _canonical(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        # One spelling whatever the session's time zone: UTC, microseconds.
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    return value


@dataclass(frozen=True)
class Manifest:
    """Part 11 §11.50: what a signature shows with the record, and binds into its hash."""

    signer_badge: str
    printed_name: str
    signed_at: dt.datetime
    meaning: str

    def line(self) -> str:
        return (f"signed by {self.printed_name} ({self.signer_badge}) at "
                f"{self.signed_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC, meaning: "
                f"'{self.meaning}'")


def nonconformance_digest(ncr: Nonconformance, decision: str, comment: str | None,
                          manifest: Manifest) -> str:
    """SHA-256 of what a disposition signs: every column of the nonconformance as it
    stands once dispositioned, the decision with its comment, and the signature's own
    manifest (signer, printed name, time, meaning), so changing any of them shows."""
    record = {attr.key: _canonical(getattr(ncr, attr.key))
              for attr in inspect(Nonconformance).column_attrs}
    record["disposition"] = {"decision": decision, "comment": comment}
    record["signature"] = {"signer": manifest.signer_badge, "name": manifest.printed_name,
                           "signed_at": _canonical(manifest.signed_at),
                           "meaning": manifest.meaning}
    content = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(content.encode()).hexdigest()


def _release_or_scrap(session: Session, ncr: Nonconformance, decision: Decision,
                      signer: Person) -> None:
    if ncr.lot_id is None:
        return
    lot = session.get_one(MaterialLot, ncr.lot_id, populate_existing=True)
    if decision == "use_as_is" and lot.status == "on_hold":
        # Another open nonconformance on the same lot keeps it on hold.
        others = session.scalar(select(func.count(Nonconformance.id)).where(
            Nonconformance.lot_id == lot.id, Nonconformance.status == "open",
            Nonconformance.id != ncr.id))
        if not others:
            set_lot_status(session, lot.code, "available", signer.id)
    elif decision == "scrap" and lot.status in HOLDABLE:
        # Scrapping also takes what is left of the lot out of stock.
        set_lot_status(session, lot.code, "scrapped", signer.id)
    # rework: the lot stays on hold until reworked and inspected again.


def disposition(session: Session, ncr_code: str, decision: str, meaning: str,
                comment: str | None = None, *, password: str) -> Disposition:
    """Decide what happens to a nonconformance's lot, signed electronically by the acting
    quality engineer, who re-enters their password to sign: use as is (lot available
    again), rework (stays on hold) or scrap."""
    signer = require(session, Action.DISPOSITION)
    if decision not in DECISIONS:
        raise RuleViolation(f"{decision!r} is not a disposition ({', '.join(DECISIONS)})")
    chosen: Decision = decision
    if not meaning.strip():
        raise RuleViolation("a signature needs its meaning, e.g. 'approved for use as is'")
    ncr = ncr_by_code(session, ncr_code, lock=True)
    if ncr.status != "open":
        earlier = session.execute(
            select(Disposition.decision, Person.badge, ElectronicSignature.signed_at)
            .join(ElectronicSignature, ElectronicSignature.id == Disposition.signature_id)
            .join(Person, Person.id == ElectronicSignature.person_id)
            .where(Disposition.nonconformance_id == ncr.id)).one()
        raise IllegalTransition(f"{ncr_code} is already dispositioned: {earlier[0]} by "
                                f"{earlier[1]} at {earlier[2]:%Y-%m-%d %H:%M}")
    confirm_signer(session, signer, password)
    ncr.status = "dispositioned"
    session.flush()
    session.refresh(ncr)
    signed_at: dt.datetime = session.execute(select(func.now())).scalar_one()
    manifest = Manifest(signer.badge, signer.name, signed_at, meaning)
    signature = ElectronicSignature(
        person_id=signer.id, meaning=meaning, signed_at=signed_at, printed_name=signer.name,
        record_table=Nonconformance.__tablename__, record_id=ncr.id,
        record_sha256=nonconformance_digest(ncr, chosen, comment, manifest))
    session.add(signature)
    session.flush()
    decided = Disposition(nonconformance_id=ncr.id, decision=chosen, comment=comment,
                          signature_id=signature.id)
    session.add(decided)
    _release_or_scrap(session, ncr, chosen, signer)
    session.flush()
    return decided


@dataclass(frozen=True)
class SignatureCheck:
    signature_id: int
    intact: bool
    detail: str


def verify_signature(session: Session, signature_id: int) -> SignatureCheck:
    """Recompute the SHA-256 of the record a signature signs and compare it with the one
    taken at signing: any change to the record since shows."""
    signature = session.scalars(
        select(ElectronicSignature).where(ElectronicSignature.id == signature_id)
        .execution_options(populate_existing=True)).one_or_none()
    if signature is None:
        raise NotFound(f"no electronic signature {signature_id}")
    if signature.record_table != Nonconformance.__tablename__:
        raise RuleViolation(f"signature {signature_id} signs a {signature.record_table} "
                            "record, which cannot be checked here")
    signer = session.get_one(Person, signature.person_id)
    manifest = Manifest(signer.badge, signature.printed_name, signature.signed_at,
                        signature.meaning)
    who = f"signature {signature_id}, {manifest.line()}"
    ncr = session.scalars(
        select(Nonconformance).where(Nonconformance.id == signature.record_id)
        .execution_options(populate_existing=True)).one_or_none()
    decided = session.scalars(
        select(Disposition).where(Disposition.signature_id == signature.id)
        .execution_options(populate_existing=True)).one_or_none()
    if ncr is None or decided is None:
        return SignatureCheck(signature_id, False,
                              f"{who}: the record it signs is gone")
    if decided.nonconformance_id != ncr.id:
        return SignatureCheck(signature_id, False, f"{who}: its disposition was moved to "
                              "another nonconformance")
    digest = nonconformance_digest(ncr, decided.decision, decided.comment, manifest)
    if digest != signature.record_sha256:
        return SignatureCheck(signature_id, False,
                              f"{who}: {ncr.code} or its signature was changed after it "
                              "was signed")
    return SignatureCheck(signature_id, True, f"{who}: matches {ncr.code} as signed")


def describe_nonconformance(session: Session, ncr: Nonconformance) -> str:
    """One line for a person: what, where, who, measured against spec."""
    machine = session.get_one(Equipment, ncr.equipment_id).code
    order = session.get_one(WorkOrder, ncr.work_order_id).code
    operator = session.get_one(Person, ncr.operator_id).badge
    lot = session.get_one(MaterialLot, ncr.lot_id).code if ncr.lot_id is not None else None
    return (f"{ncr.code}: '{ncr.characteristic}' measured {ncr.measured:g}, spec "
            f"{ncr.lower_spec:g}..{ncr.upper_spec:g}; order {order} on {machine}, operator "
            f"{operator}" + (f", lot {lot} on hold" if lot else ""))


def signature_manifest(session: Session, signature_id: int) -> Manifest:
    """What a signature shows with its record: signer, printed name, time, meaning."""
    signature = session.get_one(ElectronicSignature, signature_id, populate_existing=True)
    signer = session.get_one(Person, signature.person_id)
    return Manifest(signer.badge, signature.printed_name, signature.signed_at,
                    signature.meaning)


def describe_disposition(session: Session, ncr_code: str) -> str:
    """A nonconformance with its decision and the signature's manifest, for showing."""
    ncr = ncr_by_code(session, ncr_code)
    lines = [describe_nonconformance(session, ncr), f"  status {ncr.status}"]
    decided = session.scalars(select(Disposition)
                              .where(Disposition.nonconformance_id == ncr.id)).one_or_none()
    if decided is not None:
        lines.append(f"  disposition {decided.decision}"
                     + (f" ('{decided.comment}')" if decided.comment else ""))
        lines.append(f"  {signature_manifest(session, decided.signature_id).line()}")
    return "\n".join(lines)


def signature_of(session: Session, ncr_code: str) -> int:
    """The id of the signature under a nonconformance's disposition."""
    ncr = ncr_by_code(session, ncr_code)
    signature_id = session.scalar(select(Disposition.signature_id)
                                  .where(Disposition.nonconformance_id == ncr.id))
    if signature_id is None:
        raise RuleViolation(f"{ncr_code} is {ncr.status}: it has no signed disposition yet")
    return signature_id
