"""The dispatch list of a line: which operation runs next on which machine, or why it waits.

Computed on demand from the orders, runs, lots, machine states and maintenance windows as
they are now, so a changed priority, window or machine state shows at once. It only plans:
it starts no run and reserves no material.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from transactional.errors import NotFound
from transactional.lookup import by_code
from transactional.models import (
    BomItem,
    Equipment,
    MaintenanceWindow,
    MaterialDefinition,
    MaterialLot,
    OperationRun,
    ProductDefinition,
    RoutingOperation,
    ShiftCalendar,
    WorkOrder,
)

DISPATCHED_ORDERS = ("released", "in_progress")
# Machines in these state categories take no work until they report another state.
DOWN_CATEGORIES = ("unplanned_stop", "offline")
UTC = ZoneInfo("UTC")

# The newest state each machine reported up to `at`: one index probe per machine, however
# long the history.
LATEST_STATES = text("""
SELECT m.id AS equipment_id, s.ts, s.state, st.name, st.category
FROM mes.equipment m
CROSS JOIN LATERAL (
    SELECT ts, state FROM ts.equipment_state
    WHERE equipment_id = m.id AND ts <= :at
    ORDER BY ts DESC LIMIT 1
) s
LEFT JOIN mes.state_model_state st
       ON st.state_model_id = m.state_model_id AND st.state_code = s.state
WHERE m.id = ANY(:machines)
""")


@dataclass(frozen=True)
class DispatchEntry:
    """One line of the list: an operation of an order, its machine and planned time, or
    the reason it is held."""

    position: int
    work_order: str
    priority: int
    due_at: dt.datetime | None
    sequence: int
    operation: str
    product: str
    quantity: float
    setup_family: str | None
    machine: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    changeover: bool = False
    held: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position, "work_order": self.work_order,
            "priority": self.priority, "due_at": _iso(self.due_at),
            "sequence": self.sequence, "operation": self.operation, "product": self.product,
            "quantity": self.quantity, "setup_family": self.setup_family,
            "machine": self.machine, "planned_start": _iso(self.planned_start),
            "planned_end": _iso(self.planned_end), "changeover": self.changeover,
            "held": self.held,
        }


@dataclass(frozen=True)
class MachineStatus:
    """A machine of the line as the planner saw it."""

    machine: str
    state: str | None
    category: str | None
    available: bool
    setup_family: str | None
    # Why it takes no work, or what occupies it first (a run, a maintenance window).
    note: str | None
    free_from: dt.datetime | None

    def as_json(self) -> dict[str, Any]:
        return {"machine": self.machine, "state": self.state, "category": self.category,
                "available": self.available, "setup_family": self.setup_family,
                "note": self.note, "free_from": _iso(self.free_from)}


@dataclass(frozen=True)
class DispatchList:
    work_center: str
    work_center_type: str | None
    at: dt.datetime
    timezone: str
    entries: list[DispatchEntry]
    machines: list[MachineStatus]
    # Family changes in this list, and in the same list planned by priority and due date
    # alone: what grouping by setup family saves.
    changeovers: int
    changeovers_without_grouping: int

    @property
    def assigned(self) -> list[DispatchEntry]:
        return [entry for entry in self.entries if entry.held is None]

    @property
    def held(self) -> list[DispatchEntry]:
        return [entry for entry in self.entries if entry.held is not None]

    def as_json(self) -> dict[str, Any]:
        return {"work_center": self.work_center, "work_center_type": self.work_center_type,
                "at": _iso(self.at), "timezone": self.timezone,
                "changeovers": self.changeovers,
                "changeovers_without_grouping": self.changeovers_without_grouping,
                "machines": [machine.as_json() for machine in self.machines],
                "entries": [entry.as_json() for entry in self.entries]}


def _iso(stamp: dt.datetime | None) -> str | None:
    return stamp.isoformat() if stamp is not None else None


# --- planning (no database) -------------------------------------------------------------

@dataclass
class Candidate:
    """An operation of an order that this line could run next."""

    work_order: str
    priority: int
    due_at: dt.datetime | None
    planned_start: dt.datetime | None
    sequence: int
    operation: str
    product: str
    quantity: float
    setup_family: str | None
    setup_seconds: float
    seconds_per_unit: float
    held: str | None = None


@dataclass
class Machine:
    code: str
    free_at: dt.datetime
    family: str | None
    down: str | None = None
    windows: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    candidate: Candidate
    machine: str
    start: dt.datetime
    end: dt.datetime
    changeover: bool


def _tie_break(candidate: Candidate) -> tuple[dt.datetime, str, int]:
    return (candidate.due_at or dt.datetime.max.replace(tzinfo=UTC), candidate.work_order,
            candidate.sequence)


def _place(candidate: Candidate, machine: Machine, at: dt.datetime) -> Placement:
    # An operation without a setup family shares its setup with nothing.
    changeover = candidate.setup_family is None or candidate.setup_family != machine.family
    seconds = ((candidate.setup_seconds if changeover else 0.0)
               + candidate.seconds_per_unit * candidate.quantity)
    duration = dt.timedelta(seconds=seconds)
    start = max(machine.free_at, at, candidate.planned_start or at)
    # A machine locked out for maintenance takes nothing that would overlap the window:
    # the entry waits until the window ends (sorted by start, one pass suffices).
    for window_start, window_end in sorted(machine.windows):
        if window_start < start + duration and window_end > start:
            start = window_end
    return Placement(candidate, machine.code, start, start + duration, changeover)


def schedule(tiers: Sequence[Sequence[Candidate]], machines: Sequence[Machine],
             at: dt.datetime, *, group_families: bool = True) -> list[Placement]:
    """Place every candidate on a machine, tier by tier (priority, then due day).

    Within a tier the next placement is the one that starts earliest; among those, one
    that keeps the machine's setup family wins, then the earlier due date. Without
    `group_families` the tier is taken strictly in due-date order instead."""
    open_machines = [machine for machine in machines if machine.down is None]
    placements: list[Placement] = []
    if not open_machines:
        return placements
    for tier in tiers:
        waiting = sorted(tier, key=_tie_break)
        while waiting:
            considered = waiting if group_families else waiting[:1]
            best = min(
                (_place(candidate, machine, at) for candidate in considered
                 for machine in open_machines),
                key=lambda p: (p.start, p.changeover, _tie_break(p.candidate), p.machine))
            placements.append(best)
            waiting = [c for c in waiting if c is not best.candidate]
            machine = next(m for m in open_machines if m.code == best.machine)
            machine.free_at = best.end
            machine.family = best.candidate.setup_family
    return placements


# --- reading the plant's data -----------------------------------------------------------

@dataclass
class _Progress:
    """Completed and running runs of one operation of one order."""

    processed: float = 0.0
    good: float = 0.0
    running: float = 0.0
    has_completed_run: bool = False


def _work_center(session: Session, code: str) -> Equipment:
    line = by_code(session, Equipment, code, what="work center")
    if line.level != "work_center":
        parent = session.get(Equipment, line.parent_id) if line.parent_id else None
        hint = (f"; its line is {parent.code}"
                if parent is not None and parent.level == "work_center" else "")
        raise NotFound(f"{code!r} is a {line.level.replace('_', ' ')}, not a work center "
                       f"(line){hint}")
    return line


def _timezone(session: Session, line: Equipment) -> ZoneInfo:
    """The line's shift calendar zone, or its site's: the time the floor reads."""
    node: Equipment | None = line
    while node is not None:
        if node.shift_calendar_id is not None:
            calendar = session.get(ShiftCalendar, node.shift_calendar_id)
            if calendar is not None:
                return ZoneInfo(calendar.timezone)
        node = session.get(Equipment, node.parent_id) if node.parent_id else None
    return UTC


def _machines(session: Session, line: Equipment, at: dt.datetime,
              timezone: ZoneInfo) -> tuple[list[Machine], list[MachineStatus]]:
    rows = list(session.scalars(
        select(Equipment).where(Equipment.parent_id == line.id,
                                Equipment.level == "work_unit").order_by(Equipment.code)))
    ids = [row.id for row in rows]
    states = {row.equipment_id: row for row in session.execute(
        LATEST_STATES, {"at": at, "machines": ids})} if ids else {}
    # The current run, or else the last completed one: its family is what is set up now.
    runs = (
        select(OperationRun.equipment_id, OperationRun.status, OperationRun.started_at,
               OperationRun.planned_quantity, WorkOrder.code.label("work_order"),
               RoutingOperation.code.label("operation"), RoutingOperation.setup_family,
               RoutingOperation.setup_seconds, RoutingOperation.standard_seconds_per_unit,
               func.row_number().over(
                   partition_by=OperationRun.equipment_id,
                   order_by=((OperationRun.status == "running").desc(),
                             OperationRun.started_at.desc())).label("newest"))
        .join(WorkOrder, WorkOrder.id == OperationRun.work_order_id)
        .join(RoutingOperation, RoutingOperation.id == OperationRun.operation_id)
        .where(OperationRun.equipment_id.in_(ids),
               OperationRun.status.in_(("running", "completed")))
        .subquery())
    last_runs = {row.equipment_id: row for row in session.execute(
        select(runs).where(runs.c.newest == 1))}
    windows: dict[int, list[MaintenanceWindow]] = defaultdict(list)
    for window in session.scalars(
            select(MaintenanceWindow)
            .where(MaintenanceWindow.equipment_id.in_(ids), MaintenanceWindow.ends_at > at)
            .order_by(MaintenanceWindow.starts_at)):
        windows[window.equipment_id].append(window)

    machines: list[Machine] = []
    statuses: list[MachineStatus] = []
    for row in rows:
        state = states.get(row.id)
        run = last_runs.get(row.id)
        machine = Machine(row.code, at, run.setup_family if run is not None else None,
                          windows=[(w.starts_at, w.ends_at) for w in windows[row.id]])
        notes: list[str] = []
        if state is not None and state.category in DOWN_CATEGORIES:
            machine.down = (f"{state.name or f'state {state.state}'} ({state.category}) since "
                            f"{_local(state.ts, timezone)}")
            notes.append(machine.down)
        if run is not None and run.status == "running":
            # Estimated from the standard times; it frees the machine no earlier than now.
            estimated_end = run.started_at + dt.timedelta(
                seconds=run.setup_seconds
                + run.standard_seconds_per_unit * run.planned_quantity)
            machine.free_at = max(at, estimated_end)
            notes.append(f"running {run.work_order} {run.operation} until about "
                         f"{_local(machine.free_at, timezone)}")
        for window in windows[row.id]:
            if window.starts_at <= at:
                notes.append(f"locked out for maintenance {window.external_id} until "
                             f"{_local(window.ends_at, timezone)}")
            else:
                notes.append(f"maintenance {window.external_id} "
                             f"{_local(window.starts_at, timezone)}-"
                             f"{_local(window.ends_at, timezone)}")
        machines.append(machine)
        statuses.append(MachineStatus(
            row.code, state.name if state is not None else None,
            state.category if state is not None else None, machine.down is None,
            machine.family, "; ".join(notes) or None,
            None if machine.down else _first_free(machine, at).astimezone(timezone)))
    return machines, statuses


def _first_free(machine: Machine, at: dt.datetime) -> dt.datetime:
    free = max(machine.free_at, at)
    for window_start, window_end in sorted(machine.windows):
        if window_start <= free < window_end:
            free = window_end
    return free


def _local(stamp: dt.datetime, timezone: ZoneInfo) -> str:
    return stamp.astimezone(timezone).strftime("%Y-%m-%d %H:%M")


def _candidates(session: Session, work_center_type: str | None) -> list[Candidate]:
    """The next operation of every released or running order that this line's type runs,
    or, when an earlier operation is unfinished, the same marked as waiting for it."""
    if work_center_type is None:
        return []
    orders = list(session.scalars(
        select(WorkOrder).where(WorkOrder.status.in_(DISPATCHED_ORDERS))
        .order_by(WorkOrder.code)))
    if not orders:
        return []
    product_ids = {order.product_id for order in orders}
    products = dict(session.execute(
        select(ProductDefinition.id, ProductDefinition.code)
        .where(ProductDefinition.id.in_(product_ids))).all())
    routings: dict[int, list[RoutingOperation]] = defaultdict(list)
    for operation in session.scalars(
            select(RoutingOperation).where(RoutingOperation.product_id.in_(product_ids))
            .order_by(RoutingOperation.product_id, RoutingOperation.sequence)):
        routings[operation.product_id].append(operation)
    progress: dict[tuple[int, int], _Progress] = defaultdict(_Progress)
    for run in session.execute(
            select(OperationRun.work_order_id, OperationRun.operation_id, OperationRun.status,
                   func.sum(OperationRun.good_quantity).label("good"),
                   func.sum(OperationRun.good_quantity + OperationRun.scrap_quantity)
                   .label("processed"),
                   func.sum(OperationRun.planned_quantity).label("planned"))
            .where(OperationRun.work_order_id.in_([order.id for order in orders]),
                   OperationRun.status.in_(("running", "completed")))
            .group_by(OperationRun.work_order_id, OperationRun.operation_id,
                      OperationRun.status)):
        done = progress[(run.work_order_id, run.operation_id)]
        if run.status == "completed":
            done.processed, done.good, done.has_completed_run = run.processed, run.good, True
        else:
            done.running = run.planned

    candidates: list[Candidate] = []
    for order in orders:
        # What an operation must process is what the one before it delivered good; the
        # first gets the order quantity. An operation is complete when its completed runs
        # processed all of it.
        target = order.quantity
        routing = routings[order.product_id]
        for index, operation in enumerate(routing):
            done = progress[(order.id, operation.id)]
            complete = done.has_completed_run and done.processed >= target
            if complete:
                target = done.good
                continue
            if operation.work_center_type == work_center_type:
                remaining = target - done.processed - done.running
                if remaining > 0:
                    candidates.append(_candidate(order, products[order.product_id],
                                                 operation, remaining))
                break
            # The order's next step is on another kind of line: show this line's first
            # step of it as waiting for the step before.
            later = next((step for step in routing[index + 1:]
                          if step.work_center_type == work_center_type), None)
            if later is not None:
                before = routing[routing.index(later) - 1]
                before_done = progress[(order.id, before.id)]
                waiting = _candidate(order, products[order.product_id], later, order.quantity)
                waiting.held = (f"waiting for operation {before.sequence} {before.code} "
                                f"({before.work_center_type}): {before_done.processed:g} of "
                                f"{target if before is operation else order.quantity:g} "
                                "done")
                candidates.append(waiting)
            break
    return candidates


def _candidate(order: WorkOrder, product: str, operation: RoutingOperation,
               quantity: float) -> Candidate:
    return Candidate(order.code, order.priority, order.due_at, order.planned_start,
                     operation.sequence, operation.code, product, quantity,
                     operation.setup_family, operation.setup_seconds,
                     operation.standard_seconds_per_unit)


def _hold_for_material(session: Session, candidates: Sequence[Candidate],
                       operation_ids: dict[tuple[str, int], int]) -> None:
    """Hold every candidate whose materials the available lots cannot cover, in rank
    order: what an entry above needs is not offered again to the ones below."""
    ids = set(operation_ids.values())
    bom: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for item in session.scalars(select(BomItem).where(BomItem.operation_id.in_(ids))
                                .order_by(BomItem.material_id)):
        bom[item.operation_id].append((item.material_id, item.quantity_per_unit))
    material_ids = {material for items in bom.values() for material, _ in items}
    materials = {row.id: row for row in session.scalars(
        select(MaterialDefinition).where(MaterialDefinition.id.in_(material_ids)))}
    available: dict[int, float] = defaultdict(float, session.execute(
        select(MaterialLot.material_id, func.sum(MaterialLot.quantity))
        .where(MaterialLot.material_id.in_(material_ids), MaterialLot.status == "available")
        .group_by(MaterialLot.material_id)).all())
    for candidate in candidates:
        if candidate.held is not None:
            continue
        items = bom[operation_ids[(candidate.work_order, candidate.sequence)]]
        short = []
        for material_id, per_unit in items:
            need = per_unit * candidate.quantity
            if need > available[material_id] + 1e-9:
                material = materials[material_id]
                short.append(f"waiting for material {material.code} (need {need:g} "
                             f"{material.unit}, have {available[material_id]:g} "
                             f"{material.unit})")
        if short:
            candidate.held = "; ".join(short)
            continue
        for material_id, per_unit in items:
            available[material_id] -= per_unit * candidate.quantity


def _changeovers(placements: Sequence[Placement]) -> int:
    return sum(placement.changeover for placement in placements)


def dispatch_list(session: Session, work_center: str, at: dt.datetime | None = None
                  ) -> DispatchList:
    """What to run next on the machines of line `work_center`, planned from `at` (now)."""
    at = at if at is not None else dt.datetime.now(UTC)
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"planning time {at.isoformat()} has no time zone")
    line = _work_center(session, work_center)
    timezone = _timezone(session, line)
    candidates = _candidates(session, line.work_center_type)

    def rank(candidate: Candidate) -> tuple[int, dt.date]:
        # Due dates count by the plant's day, so orders due the same day can be grouped
        # by setup family.
        due_day = (candidate.due_at.astimezone(timezone).date()
                   if candidate.due_at is not None else dt.date.max)
        return (-candidate.priority, due_day)

    candidates.sort(key=lambda c: (rank(c), _tie_break(c)))
    operation_ids = _operation_ids(session, candidates)
    _hold_for_material(session, candidates, operation_ids)

    ready = [candidate for candidate in candidates if candidate.held is None]
    tiers: dict[tuple[int, dt.date], list[Candidate]] = defaultdict(list)
    for candidate in ready:
        tiers[rank(candidate)].append(candidate)
    ordered_tiers = [tiers[key] for key in sorted(tiers)]

    machines, statuses = _machines(session, line, at, timezone)
    placements = schedule(ordered_tiers, [_copy(m) for m in machines], at)
    naive = schedule(ordered_tiers, [_copy(m) for m in machines], at, group_families=False)
    if not any(machine.down is None for machine in machines):
        down = ", ".join(f"{m.code}: {m.down}" for m in machines) or "it has no machines"
        for candidate in ready:
            candidate.held = f"no machine of {line.code} can take work ({down})"

    entries: list[DispatchEntry] = []
    for placement in placements:
        entries.append(_entry(len(entries) + 1, placement.candidate, placement, timezone))
    for candidate in candidates:
        if candidate.held is not None:
            entries.append(_entry(len(entries) + 1, candidate, None, timezone))
    return DispatchList(line.code, line.work_center_type, at.astimezone(timezone),
                        str(timezone), entries, statuses, _changeovers(placements),
                        _changeovers(naive))


def _operation_ids(session: Session, candidates: Sequence[Candidate]
                   ) -> dict[tuple[str, int], int]:
    codes = {candidate.work_order for candidate in candidates}
    return {(code, sequence): operation_id for code, sequence, operation_id in session.execute(
        select(WorkOrder.code, RoutingOperation.sequence, RoutingOperation.id)
        .join(RoutingOperation, RoutingOperation.product_id == WorkOrder.product_id)
        .where(WorkOrder.code.in_(codes)))}


def _copy(machine: Machine) -> Machine:
    return Machine(machine.code, machine.free_at, machine.family, machine.down,
                   list(machine.windows))


def _entry(position: int, candidate: Candidate, placement: Placement | None,
           timezone: ZoneInfo) -> DispatchEntry:
    # Times in the plant's zone, so the JSON reads like the floor's clock.
    return DispatchEntry(
        position, candidate.work_order, candidate.priority,
        candidate.due_at.astimezone(timezone) if candidate.due_at else None,
        candidate.sequence, candidate.operation, candidate.product, candidate.quantity,
        candidate.setup_family,
        machine=placement.machine if placement else None,
        planned_start=placement.start.astimezone(timezone) if placement else None,
        planned_end=placement.end.astimezone(timezone) if placement else None,
        changeover=placement.changeover if placement else False,
        held=candidate.held)


# --- output -----------------------------------------------------------------------------

def render(plan: DispatchList) -> str:
    """The list as a table for a terminal or a printout, times in the plant's zone."""
    timezone = ZoneInfo(plan.timezone)
    lines = [f"Dispatch list for {plan.work_center} ({plan.work_center_type or 'no type'}) "
             f"from {_local(plan.at, timezone)} ({plan.timezone})", ""]
    lines.append("Machines:")
    for machine in plan.machines:
        if machine.available:
            family = f", set up for {machine.setup_family}" if machine.setup_family else ""
            note = f"; {machine.note}" if machine.note else ""
            status = f"available: {machine.state or 'no state reported'}{family}{note}"
        else:
            # The note starts with the state that stops it.
            status = f"NOT AVAILABLE: {machine.note}"
        lines.append(f"  {machine.machine:<10} {status}")
    lines.append("")
    if not plan.entries:
        lines.append("Nothing to dispatch: no released order has an open operation for "
                     f"{plan.work_center_type or 'this line'}.")
        return "\n".join(lines)
    header = ("#", "order", "operation", "product", "qty", "machine", "planned start",
              "planned end", "setup family", "changeover", "held")
    rows = [header]
    for entry in plan.entries:
        rows.append((
            str(entry.position), entry.work_order, f"{entry.sequence} {entry.operation}",
            entry.product, f"{entry.quantity:g}", entry.machine or "-",
            _local(entry.planned_start, timezone) if entry.planned_start else "-",
            _local(entry.planned_end, timezone) if entry.planned_end else "-",
            entry.setup_family or "-",
            ("yes" if entry.changeover else "no") if entry.held is None else "-",
            entry.held or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    lines.append("")
    lines.append(f"{len(plan.assigned)} planned, {len(plan.held)} held; changeovers: "
                 f"{plan.changeovers} (in plain priority and due-date order: "
                 f"{plan.changeovers_without_grouping})")
    return "\n".join(lines)
