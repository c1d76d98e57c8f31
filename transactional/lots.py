"""Material lots: receive, split, merge, move, hold and release, consume into a run, produce,
ship to another site (which receives it with the same code and names where it came from).

Every quantity change is a `lot_movement` row (a trigger adds it to the lot, the lot's CHECK
refuses a negative quantity); split, merge and produce also write the genealogy links that
`transactional.genealogy` walks. Services lock the lots they change and never commit; the
caller owns the transaction and says who acts (`transactional.audit.acting`) beforehand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import get_args

import psycopg.errors
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from transactional.errors import IllegalTransition, NotFound, NotPermitted, RuleViolation
from transactional.limits import code as bounded_code
from transactional.limits import quantity as bounded_quantity
from transactional.lookup import by_code
from transactional.models import (
    BomItem,
    Equipment,
    GenealogyLink,
    LotMovement,
    LotStatus,
    MaterialDefinition,
    MaterialLot,
    MovementKind,
    Nonconformance,
    OperationRun,
    ProductDefinition,
    RoutingOperation,
    StorageLocation,
)
from transactional.permissions import Action, require

LOT_STATUSES: tuple[LotStatus, ...] = get_args(LotStatus)
FINAL: frozenset[LotStatus] = frozenset({"consumed", "scrapped", "shipped"})
# Where a status may go by hand. `consumed` is reached only by using a lot up.
TRANSITIONS: dict[LotStatus, frozenset[LotStatus]] = {
    "available": frozenset({"on_hold", "quarantined", "scrapped"}),
    "on_hold": frozenset({"available", "quarantined", "scrapped"}),
    "quarantined": frozenset({"available", "on_hold", "scrapped"}),
    "consumed": frozenset(),
    "scrapped": frozenset(),
    "shipped": frozenset(),
}
NEGATIVE_QUANTITY = "ck_material_lot_quantity"
# The permission a change of status needs: releasing and scrapping are quality's.
STATUS_ACTION: dict[LotStatus, Action] = {
    "available": Action.RELEASE_HOLD, "scrapped": Action.SCRAP_LOT,
    "on_hold": Action.HOLD_LOT, "quarantined": Action.HOLD_LOT,
}


# --- looking things up ------------------------------------------------------------------

def describe(session: Session, lot: MaterialLot | str) -> str:
    """One line for people: "lot L-1: 40 kg of STEEL-COIL, on hold, at RM-STORE"."""
    if isinstance(lot, str):
        lot = _lot(session, lot)
    material = session.get(MaterialDefinition, lot.material_id)
    location = session.get(StorageLocation, lot.location_id)
    assert material is not None and location is not None  # foreign keys
    where = (f"to site {lot.shipped_to_site}" if lot.shipped_to_site is not None
             else f"at {location.code}")
    origin = f", from site {lot.origin_site}" if lot.origin_site is not None else ""
    return (f"lot {lot.code}: {lot.quantity:g} {material.unit} of {material.code}, "
            f"{lot.status.replace('_', ' ')}, {where}{origin}")


def _lot(session: Session, code: str) -> MaterialLot:
    return by_code(session, MaterialLot, code, what="material lot")


def _material(session: Session, code: str) -> MaterialDefinition:
    return by_code(session, MaterialDefinition, code, what="material")


def _location(session: Session, code: str) -> StorageLocation:
    return by_code(session, StorageLocation, code, what="storage location")


def _run(session: Session, run_id: int) -> OperationRun:
    run = session.get(OperationRun, run_id)
    if run is None:
        raise NotFound(f"run {run_id}: no such operation run")
    return run


def _unit(session: Session, lot: MaterialLot) -> str:
    material = session.get(MaterialDefinition, lot.material_id)
    assert material is not None  # a foreign key
    return material.unit


def _locked(session: Session, codes: Sequence[str]) -> list[MaterialLot]:
    """The lots, row-locked until the transaction ends, in the order of `codes`.

    Locked in id order, so two services locking overlapping lots cannot deadlock; FOR NO
    KEY UPDATE, so rows that only refer to a lot (movements, links) do not wait for it."""
    rows = session.scalars(
        select(MaterialLot).where(MaterialLot.code.in_(codes)).order_by(MaterialLot.id)
        .with_for_update(key_share=True).execution_options(populate_existing=True)).all()
    by_code = {lot.code: lot for lot in rows}
    missing = [code for code in codes if code not in by_code]
    if missing:
        raise NotFound(f"no material lot {', '.join(missing)}")
    return [by_code[code] for code in codes]


def _lock_one(session: Session, code: str) -> MaterialLot:
    return _locked(session, [code])[0]


def _new_code(session: Session, code: str) -> None:
    if not code:
        raise RuleViolation("a lot needs a code")
    bounded_code(code, "lot code")
    if session.scalar(select(MaterialLot.id).where(MaterialLot.code == code)) is not None:
        raise RuleViolation(f"lot {code} exists already")


def _amount(quantity: float, what: str, unit: str | None = None) -> float:
    return bounded_quantity(quantity, unit, what)


def _usable(lot: MaterialLot, action: str) -> None:
    if lot.status in FINAL:
        raise IllegalTransition(f"lot {lot.code} is {lot.status}: it cannot be {action}")


# --- writing movements -----------------------------------------------------------------

def _movement(lot: MaterialLot, kind: MovementKind, quantity: float, person_id: int,
              run_id: int | None = None, location_id: int | None = None) -> LotMovement:
    return LotMovement(lot_id=lot.id, kind=kind, quantity=quantity,
                       location_id=lot.location_id if location_id is None else location_id,
                       run_id=run_id, person_id=person_id)


def _record(session: Session, movements: Iterable[LotMovement],
            lots: Iterable[MaterialLot]) -> None:
    session.add_all(movements)
    session.flush()
    # The trigger changed the lots' quantities behind the ORM's back.
    for lot in lots:
        session.expire(lot, ["quantity"])


def _take(session: Session, lot: MaterialLot, kind: MovementKind, quantity: float,
          person_id: int, run_id: int | None = None) -> None:
    """Take `quantity` out of a locked lot; the database refuses to go below zero."""
    # Read before writing: a refused flush expires every object in the session.
    code, left, unit = lot.code, lot.quantity, _unit(session, lot)
    try:
        _record(session, [_movement(lot, kind, -quantity, person_id, run_id)], [lot])
    except IntegrityError as error:
        if (isinstance(error.orig, psycopg.errors.CheckViolation)
                and error.orig.diag.constraint_name == NEGATIVE_QUANTITY):
            raise RuleViolation(f"lot {code}: {quantity:g} {unit} wanted, {left:g} {unit} "
                                "left") from None
        raise


# --- services ---------------------------------------------------------------------------

def add_location(session: Session, code: str, name: str) -> StorageLocation:
    """A new storage location (a rack, a line-side buffer, the quarantine cage)."""
    require(session, Action.CHANGE_PLANT)
    if not code:
        raise RuleViolation("a storage location needs a code")
    bounded_code(code, "storage location code")
    exists = session.scalar(select(StorageLocation.id).where(StorageLocation.code == code))
    if exists is not None:
        raise RuleViolation(f"storage location {code} exists already")
    location = StorageLocation(code=code, name=name or code)
    session.add(location)
    session.flush()
    return location


def receive(session: Session, code: str, material_code: str, quantity: float,
            location_code: str, person_id: int, from_site: str | None = None) -> MaterialLot:
    """A new lot of purchased material arrives at a storage location; or, `from_site`, a
    lot another site shipped here, under the code it had there."""
    require(session, Action.MOVE_MATERIAL)
    _new_code(session, code)
    if from_site is not None:
        from_site = _other_site(session, from_site, f"receiving lot {code}")
    material = _material(session, material_code)
    _amount(quantity, f"receiving lot {code}", material.unit)
    location = _location(session, location_code)
    lot = MaterialLot(code=code, material_id=material.id, location_id=location.id,
                      origin_site=from_site)
    session.add(lot)
    session.flush()
    _record(session, [_movement(lot, "receive", quantity, person_id)], [lot])
    return lot


def split(session: Session, lot_code: str, parts: Sequence[tuple[str, float]],
          person_id: int) -> list[MaterialLot]:
    """Split quantities off a lot into new lots (code, quantity), at the same location and
    with the same status: a held lot's parts stay held. A lot split to nothing is consumed."""
    require(session, Action.MOVE_MATERIAL)
    if not parts:
        raise RuleViolation(f"splitting lot {lot_code}: name at least one new lot")
    codes = [code for code, _ in parts]
    if len(set(codes)) != len(codes) or lot_code in codes:
        raise RuleViolation(f"splitting lot {lot_code}: each new lot needs its own code")
    for code, quantity in parts:
        _amount(quantity, f"splitting lot {lot_code} into {code}")
        _new_code(session, code)
    source = _lock_one(session, lot_code)
    _usable(source, "split")
    total = math.fsum(quantity for _, quantity in parts)
    _take(session, source, "split_out", total, person_id)
    children = [MaterialLot(code=code, material_id=source.material_id, status=source.status,
                            location_id=source.location_id) for code, _ in parts]
    session.add_all(children)
    session.flush()
    _record(session, [_movement(child, "split_in", quantity, person_id)
                      for child, (_, quantity) in zip(children, parts, strict=True)], children)
    session.add_all(GenealogyLink(parent_lot_id=source.id, child_lot_id=child.id, kind="split",
                                  quantity=quantity)
                    for child, (_, quantity) in zip(children, parts, strict=True))
    if source.quantity == 0:
        source.status = "consumed"
    session.flush()
    return children


def merge(session: Session, lot_codes: Sequence[str], new_code: str,
          person_id: int) -> MaterialLot:
    """Put whole lots of one material, status and location together into a new lot; the
    old lots are then consumed. Lots of different status are not mixed: a held lot would
    hide in a good one."""
    require(session, Action.MOVE_MATERIAL)
    if len(set(lot_codes)) < 2 or len(set(lot_codes)) != len(lot_codes):
        raise RuleViolation("a merge needs two or more different lots")
    _new_code(session, new_code)
    sources = _locked(session, lot_codes)
    first = sources[0]
    for lot in sources:
        _usable(lot, "merged")
        if lot.quantity <= 0:
            raise RuleViolation(f"lot {lot.code} is empty: nothing to merge")
        for attribute, what in (("material_id", "material"), ("status", "status"),
                                ("location_id", "location")):
            if getattr(lot, attribute) != getattr(first, attribute):
                raise RuleViolation(
                    f"lots {first.code} and {lot.code} differ in {what}: only lots of one "
                    "material, status and location can be merged"
                    + (" (move them together first)" if what == "location" else ""))
    taken = {lot.code: lot.quantity for lot in sources}
    merged = MaterialLot(code=new_code, material_id=first.material_id, status=first.status,
                         location_id=first.location_id)
    session.add(merged)
    session.flush()
    _record(session, [_movement(lot, "merge_out", -taken[lot.code], person_id)
                      for lot in sources], sources)
    _record(session, [_movement(merged, "merge_in", math.fsum(taken.values()), person_id)],
            [merged])
    session.add_all(GenealogyLink(parent_lot_id=lot.id, child_lot_id=merged.id, kind="merge",
                                  quantity=taken[lot.code]) for lot in sources)
    for lot in sources:
        lot.status = "consumed"
    session.flush()
    return merged


def move(session: Session, lot_code: str, location_code: str, person_id: int) -> MaterialLot:
    """Move a whole lot to another storage location (out of one, into the other)."""
    require(session, Action.MOVE_MATERIAL)
    location = _location(session, location_code)
    lot = _lock_one(session, lot_code)
    _usable(lot, "moved")
    if lot.location_id == location.id:
        raise RuleViolation(f"lot {lot_code} is at {location_code} already")
    if lot.quantity <= 0:
        raise RuleViolation(f"lot {lot_code} is empty: nothing to move")
    quantity = lot.quantity
    _record(session, [_movement(lot, "move_out", -quantity, person_id),
                      _movement(lot, "move_in", quantity, person_id, location_id=location.id)],
            [lot])
    lot.location_id = location.id
    session.flush()
    return lot


def _other_site(session: Session, code: str, action: str) -> str:
    """A site code given for a shipment: bounded, and not this plant's own site."""
    code = code.strip()
    if not code:
        raise RuleViolation(f"{action}: name the other site by its code")
    bounded_code(code, "site code")
    own = session.scalar(select(Equipment.code).where(Equipment.level == "site",
                                                      Equipment.code == code))
    if own is not None:
        raise RuleViolation(f"{action}: {code} is this plant's own site (use mes lot move "
                            "between storage locations of one site)")
    return code


def ship(session: Session, lot_code: str, to_site: str, person_id: int) -> MaterialLot:
    """Ship a whole available lot to another site: a `ship_out` movement takes all of it
    out of stock, and the lot is `shipped` to that site (final here; the other site
    receives it with the same code, naming this site as its origin)."""
    require(session, Action.MOVE_MATERIAL)
    to_site = _other_site(session, to_site, f"shipping lot {lot_code}")
    lot = _lock_one(session, lot_code)
    if lot.status != "available":
        raise IllegalTransition(
            f"lot {lot_code} is {lot.status.replace('_', ' ')}: only available lots can be "
            "shipped" + (" (release it first)" if lot.status in ("on_hold", "quarantined")
                         else ""))
    if lot.quantity <= 0:
        raise RuleViolation(f"lot {lot_code} is empty: nothing to ship")
    _take(session, lot, "ship_out", lot.quantity, person_id)
    lot.status = "shipped"
    lot.shipped_to_site = to_site
    session.flush()
    return lot


def parse_status(status: str) -> LotStatus:
    """A status as typed ('on-hold', 'ON_HOLD') in the database's spelling."""
    spelled = status.strip().lower().replace("-", "_").replace(" ", "_")
    for known in LOT_STATUSES:
        if known == spelled:
            return known
    raise RuleViolation(f"lot status {status!r}: not one of {', '.join(LOT_STATUSES)}")


def open_nonconformances(session: Session, *where: ColumnElement[bool]) -> list[str]:
    """The codes of the open nonconformances that match `where` (a lot's, an order's)."""
    return list(session.scalars(
        select(Nonconformance.code).where(Nonconformance.status == "open", *where)
        .order_by(Nonconformance.code)))


def set_status(session: Session, lot_code: str, status: str, person_id: int) -> MaterialLot:
    """Hold, quarantine, release or scrap a lot. Scrapping takes what is left out of stock
    (a `scrap` movement), so balances count only material that can still be used. A lot
    held by an open nonconformance is released only by that nonconformance's disposition."""
    target = parse_status(status)
    require(session, STATUS_ACTION.get(target, Action.HOLD_LOT))
    lot = _lock_one(session, lot_code)
    if target == lot.status:
        raise IllegalTransition(f"lot {lot_code} is {lot.status} already")
    if target not in TRANSITIONS[lot.status]:
        allowed = ", ".join(sorted(TRANSITIONS[lot.status])) or "nothing: it is final"
        raise IllegalTransition(f"lot {lot_code} cannot go from {lot.status} to {target} "
                                f"(from {lot.status} it can go to {allowed})")
    if target == "available":
        holding = open_nonconformances(session, Nonconformance.lot_id == lot.id)
        if holding:
            raise NotPermitted(f"lot {lot_code} is held by open nonconformance "
                               f"{', '.join(holding)}: only its disposition (by quality) "
                               "releases it (mes ncr disposition)")
    if target == "scrapped" and lot.quantity > 0:
        _take(session, lot, "scrap", lot.quantity, person_id)
    lot.status = target
    session.flush()
    return lot


def check_consumable(session: Session, lot: MaterialLot, run: OperationRun) -> None:
    """Refuse (RuleViolation) a lot that may not go into this run: not available, a run
    that is not running, or a material the bill of materials of the run's operation does
    not ask for."""
    if lot.status != "available":
        raise RuleViolation(f"lot {lot.code} is {lot.status.replace('_', ' ')}: only "
                            "available lots can be consumed")
    if run.status != "running":
        raise RuleViolation(f"run {run.id} is {run.status}: material goes only into a "
                            "running operation")
    operation = session.get(RoutingOperation, run.operation_id)
    assert operation is not None  # a foreign key
    wanted = session.execute(
        select(MaterialDefinition.id, MaterialDefinition.code)
        .join(BomItem, BomItem.material_id == MaterialDefinition.id)
        .where(BomItem.operation_id == operation.id)
        .order_by(MaterialDefinition.code)).all()
    if lot.material_id not in {row.id for row in wanted}:
        material = session.get(MaterialDefinition, lot.material_id)
        assert material is not None
        asked = ", ".join(row.code for row in wanted) or "no material"
        raise RuleViolation(f"lot {lot.code} is {material.code}, which operation "
                            f"{operation.code} of run {run.id} does not use (its bill of "
                            f"materials asks for {asked})")


def consume(session: Session, lot_code: str, quantity: float, run_id: int,
            person_id: int) -> MaterialLot:
    """Take material from an available lot into a running operation; the lot is consumed
    once nothing is left of it."""
    require(session, Action.MOVE_MATERIAL)
    run = _run(session, run_id)
    lot = _lock_one(session, lot_code)
    _amount(quantity, f"consuming lot {lot_code}", _unit(session, lot))
    check_consumable(session, lot, run)
    _take(session, lot, "consume", quantity, person_id, run_id=run.id)
    if lot.quantity == 0:
        lot.status = "consumed"
        session.flush()
    return lot


def output_material_id(session: Session, run: OperationRun) -> int:
    """What a run's operation makes: its own output material, else the product's."""
    operation = session.get(RoutingOperation, run.operation_id)
    assert operation is not None
    if operation.output_material_id is not None:
        return operation.output_material_id
    product = session.get(ProductDefinition, operation.product_id)
    assert product is not None
    return product.material_id


def produce(session: Session, code: str, material_code: str, quantity: float,
            location_code: str, run_id: int, person_id: int,
            parent_lot_codes: Sequence[str] | None = None) -> MaterialLot:
    """A new lot made by a run, linked to the lots the run consumed: those named, each of
    which must have been consumed by this run, or (None) every lot the run consumed."""
    _amount(quantity, f"producing lot {code}")
    _new_code(session, code)
    run = _run(session, run_id)
    if run.status == "aborted":
        raise RuleViolation(f"run {run_id} was aborted: it produces nothing")
    material = _material(session, material_code)
    made = output_material_id(session, run)
    if material.id != made:
        expected = session.get(MaterialDefinition, made)
        assert expected is not None
        raise RuleViolation(f"run {run_id} makes {expected.code}, not {material_code}")
    location = _location(session, location_code)
    consumed = dict(session.execute(
        select(MaterialLot.code, -func.sum(LotMovement.quantity))
        .join(LotMovement, LotMovement.lot_id == MaterialLot.id)
        .where(LotMovement.run_id == run.id, LotMovement.kind == "consume")
        .group_by(MaterialLot.code).order_by(MaterialLot.code)).all())
    parents = sorted(consumed) if parent_lot_codes is None else list(parent_lot_codes)
    not_consumed = [parent for parent in parents if parent not in consumed]
    if not_consumed:
        raise RuleViolation(f"lot {', '.join(not_consumed)} was not consumed by run {run_id}: "
                            "consume it into the run before naming it as an input")
    lot = MaterialLot(code=code, material_id=material.id, location_id=location.id,
                      produced_by_run_id=run.id)
    session.add(lot)
    session.flush()
    _record(session, [_movement(lot, "produce", quantity, person_id, run_id=run.id)], [lot])
    parent_ids = dict(session.execute(
        select(MaterialLot.code, MaterialLot.id).where(MaterialLot.code.in_(parents))
    ).all())
    session.add_all(GenealogyLink(parent_lot_id=parent_ids[parent], child_lot_id=lot.id,
                                  kind="consumed", run_id=run.id, quantity=consumed[parent])
                    for parent in dict.fromkeys(parents))
    session.flush()
    return lot
