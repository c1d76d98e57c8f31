"""Genealogy traces: where a lot came from (backward) and where it went (forward).

Walks `genealogy_link` with a recursive query, then reads each lot on the way and the runs
that made or consumed it (machine, operator, work order, inspection results), in a fixed
handful of queries whatever the size of the trace. Read-only; it renders a trace as a
tree or a JSON object but decides nothing about a recall.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from transactional.errors import NotFound

Direction = Literal["backward", "forward"]
DIRECTIONS: tuple[Direction, ...] = ("backward", "forward")

LOT_ID = text("SELECT id FROM mes.material_lot WHERE code = :code")

# UNION (not UNION ALL) keeps each link once, so a lot reached along several paths is
# expanded once and the walk ends even on a malformed cycle.
BACKWARD = text("""
WITH RECURSIVE edge AS (
    SELECT parent_lot_id, child_lot_id, kind, run_id, quantity
    FROM mes.genealogy_link WHERE child_lot_id = :lot_id
  UNION
    SELECT g.parent_lot_id, g.child_lot_id, g.kind, g.run_id, g.quantity
    FROM edge e JOIN mes.genealogy_link g ON g.child_lot_id = e.parent_lot_id
)
SELECT parent_lot_id, child_lot_id, kind, run_id, quantity FROM edge
""")
FORWARD = text("""
WITH RECURSIVE edge AS (
    SELECT parent_lot_id, child_lot_id, kind, run_id, quantity
    FROM mes.genealogy_link WHERE parent_lot_id = :lot_id
  UNION
    SELECT g.parent_lot_id, g.child_lot_id, g.kind, g.run_id, g.quantity
    FROM edge e JOIN mes.genealogy_link g ON g.parent_lot_id = e.child_lot_id
)
SELECT parent_lot_id, child_lot_id, kind, run_id, quantity FROM edge
""")
LOTS = text("""
SELECT l.id, l.code, m.code AS material, m.name AS material_name, m.unit, l.quantity,
       l.status, s.code AS location, l.produced_by_run_id, l.created_at
FROM mes.material_lot l
JOIN mes.material_definition m ON m.id = l.material_id
JOIN mes.storage_location s ON s.id = l.location_id
WHERE l.id = ANY(:ids)
""")
# What came into each lot (received, produced, split or merged in) and what each run took.
MOVEMENTS = text("""
SELECT lot_id, kind, run_id, sum(quantity) AS quantity
FROM mes.lot_movement
WHERE lot_id = ANY(:ids) AND kind IN ('receive', 'produce', 'split_in', 'merge_in', 'consume')
GROUP BY lot_id, kind, run_id
""")
RUNS = text("""
SELECT r.id, r.status, r.started_at, r.ended_at, w.code AS work_order, o.code AS operation,
       e.code AS machine, p.badge AS operator_badge, p.name AS operator_name
FROM mes.operation_run r
JOIN mes.work_order w ON w.id = r.work_order_id
JOIN mes.routing_operation o ON o.id = r.operation_id
JOIN mes.equipment e ON e.id = r.equipment_id
JOIN mes.person p ON p.id = r.operator_id
WHERE r.id = ANY(:ids)
""")
INSPECTIONS = text("""
SELECT i.run_id, ip.characteristic, i.sample_number, i.measured, ip.unit, ip.lower_spec,
       ip.upper_spec, i.within_spec, l.code AS lot
FROM mes.inspection_result i
JOIN mes.inspection_plan ip ON ip.id = i.plan_id
LEFT JOIN mes.material_lot l ON l.id = i.lot_id
WHERE i.run_id = ANY(:ids)
ORDER BY i.run_id, ip.characteristic, i.sample_number
""")
INTAKE_KINDS = frozenset({"receive", "produce", "split_in", "merge_in"})


@dataclass(frozen=True)
class Inspection:
    characteristic: str
    sample_number: int
    measured: float
    unit: str | None
    lower_spec: float
    upper_spec: float
    within_spec: bool
    lot: str | None


@dataclass(frozen=True)
class RunInfo:
    id: int
    work_order: str
    operation: str
    machine: str
    operator_badge: str
    operator_name: str
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    inspections: tuple[Inspection, ...]


@dataclass(frozen=True)
class LotInfo:
    code: str
    material: str
    material_name: str
    unit: str
    quantity: float
    # What came into the lot: received, produced, split or merged in.
    initial_quantity: float
    status: str
    location: str
    made_by_run: int | None
    # Run id -> how much of this lot it consumed.
    consumed_by_runs: dict[int, float]


@dataclass(frozen=True)
class Link:
    parent: str
    child: str
    kind: str
    run: int | None
    quantity: float | None


@dataclass(frozen=True)
class Trace:
    root: str
    links: dict[Direction, tuple[Link, ...]]
    lots: dict[str, LotInfo]
    runs: dict[int, RunInfo]

    def levels(self, direction: Direction) -> dict[str, int]:
        """Each lot reached in `direction`, by its fewest links from the root."""
        step: dict[str, list[str]] = defaultdict(list)
        for link in self.links.get(direction, ()):
            near, far = ((link.child, link.parent) if direction == "backward"
                         else (link.parent, link.child))
            step[near].append(far)
        level = {self.root: 0}
        queue = deque([self.root])
        while queue:
            lot = queue.popleft()
            for other in step[lot]:
                if other not in level:
                    level[other] = level[lot] + 1
                    queue.append(other)
        return level

    def depth(self, direction: Direction) -> int:
        """How many levels the trace reaches in `direction` (0: none)."""
        return max(self.levels(direction).values())

    def to_json(self) -> dict[str, Any]:
        def run(info: RunInfo) -> dict[str, Any]:
            return {
                "work_order": info.work_order, "operation": info.operation,
                "machine": info.machine, "operator": {"badge": info.operator_badge,
                                                      "name": info.operator_name},
                "status": info.status, "started_at": info.started_at.isoformat(),
                "ended_at": info.ended_at.isoformat() if info.ended_at else None,
                "inspections": [vars(i) for i in info.inspections],
            }

        return {
            "lot": self.root,
            **{direction: {
                "levels": self.depth(direction),
                "links": [vars(link) for link in links],
            } for direction, links in self.links.items()},
            "lots": {code: {**vars(info), "consumed_by_runs": {
                str(run_id): quantity for run_id, quantity in info.consumed_by_runs.items()}}
                for code, info in self.lots.items()},
            "runs": {str(run_id): run(info) for run_id, info in self.runs.items()},
        }


def _ids(values: Iterable[int]) -> list[int]:
    return sorted(set(values))


def trace(session: Session, lot_code: str,
          directions: Sequence[Direction] = DIRECTIONS) -> Trace:
    """The whole genealogy of a lot in the given directions, with every lot and run on it."""
    root_id = session.execute(LOT_ID, {"code": lot_code}).scalar()
    if root_id is None:
        raise NotFound(f"no material lot {lot_code}")
    raw_links: dict[Direction, list[Any]] = {
        direction: list(session.execute(BACKWARD if direction == "backward" else FORWARD,
                                        {"lot_id": root_id}))
        for direction in directions}
    lot_ids = _ids([root_id, *(end for rows in raw_links.values() for row in rows
                               for end in (row.parent_lot_id, row.child_lot_id))])

    lot_rows = {row.id: row for row in session.execute(LOTS, {"ids": lot_ids})}
    code = {lot_id: row.code for lot_id, row in lot_rows.items()}
    intake: dict[int, float] = defaultdict(float)
    consumed: dict[int, dict[int, float]] = defaultdict(dict)
    for row in session.execute(MOVEMENTS, {"ids": lot_ids}):
        if row.kind in INTAKE_KINDS:
            intake[row.lot_id] += row.quantity
        elif row.run_id is not None:
            consumed[row.lot_id][row.run_id] = -row.quantity

    links = {direction: tuple(sorted(
        (Link(code[row.parent_lot_id], code[row.child_lot_id], row.kind, row.run_id,
              row.quantity) for row in rows), key=lambda link: (link.parent, link.child)))
        for direction, rows in raw_links.items()}
    run_ids = _ids([*(row.produced_by_run_id for row in lot_rows.values()
                      if row.produced_by_run_id is not None),
                    *(run_id for runs in consumed.values() for run_id in runs),
                    *(link.run for rows in links.values() for link in rows
                      if link.run is not None)])
    inspections: dict[int, list[Inspection]] = defaultdict(list)
    for row in session.execute(INSPECTIONS, {"ids": run_ids}):
        inspections[row.run_id].append(Inspection(
            row.characteristic, row.sample_number, row.measured, row.unit, row.lower_spec,
            row.upper_spec, row.within_spec, row.lot))
    runs = {row.id: RunInfo(row.id, row.work_order, row.operation, row.machine,
                            row.operator_badge, row.operator_name, row.status, row.started_at,
                            row.ended_at, tuple(inspections[row.id]))
            for row in session.execute(RUNS, {"ids": run_ids})}
    lots = {row.code: LotInfo(row.code, row.material, row.material_name, row.unit,
                              row.quantity, intake[lot_id], row.status, row.location,
                              row.produced_by_run_id, dict(sorted(consumed[lot_id].items())))
            for lot_id, row in sorted(lot_rows.items(), key=lambda item: item[1].code)}
    return Trace(lot_code, links, lots, dict(sorted(runs.items())))


# --- the tree a person reads ---------------------------------------------------------------

def _q(quantity: float | None, unit: str) -> str:
    return "?" if quantity is None else f"{quantity:g} {unit}"


def _lot_line(lot: LotInfo) -> str:
    return (f"{lot.code}  {lot.material} ({lot.material_name}), {lot.quantity:g} of "
            f"{lot.initial_quantity:g} {lot.unit} left, {lot.status.replace('_', ' ')}, "
            f"at {lot.location}")


def _run_text(run: RunInfo) -> str:
    span = f"{run.started_at:%Y-%m-%d %H:%M}"
    if run.ended_at is not None:
        span += f" to {run.ended_at:%Y-%m-%d %H:%M}"
    return (f"run {run.id}: order {run.work_order}, operation {run.operation} on "
            f"{run.machine}, operator {run.operator_badge} {run.operator_name}, {span}"
            + ("" if run.status == "completed" else f" ({run.status})"))


def _inspection_text(inspections: Sequence[Inspection]) -> str:
    parts = []
    for i in inspections:
        unit = f" {i.unit}" if i.unit else ""
        verdict = "ok" if i.within_spec else f"OUT OF SPEC [{i.lower_spec:g}, {i.upper_spec:g}]"
        parts.append(f"{i.characteristic} #{i.sample_number} {i.measured:g}{unit} {verdict}")
    return "inspections: " + "; ".join(parts)


def _details(trace: Trace, lot: LotInfo, direction: Direction | None) -> list[str]:
    lines: list[str] = []
    if lot.made_by_run is not None and lot.made_by_run in trace.runs:
        run = trace.runs[lot.made_by_run]
        lines.append(f"made by {_run_text(run)}")
        if run.inspections:
            lines.append("  " + _inspection_text(run.inspections))
    # Forward, a run that consumed the lot but has made nothing from it yet is still where
    # the lot went.
    if direction in (None, "forward") and "forward" in trace.links:
        linked = {link.run for link in trace.links.get("forward", ())
                  if link.parent == lot.code}
        for run_id, quantity in lot.consumed_by_runs.items():
            if run_id not in linked and run_id in trace.runs:
                lines.append(f"{_q(quantity, lot.unit)} consumed by "
                             f"{_run_text(trace.runs[run_id])}, no output lot yet")
    return lines


def _link_label(link: Link, unit: str) -> str:
    how = {"consumed": "consumed", "split": "split", "merge": "merged"}.get(link.kind, link.kind)
    run = f" in run {link.run}" if link.run is not None else ""
    return f"{how} {_q(link.quantity, unit)}{run}"


def _tree(trace: Trace, direction: Direction) -> list[str]:
    nexts: dict[str, list[Link]] = defaultdict(list)
    for link in trace.links[direction]:
        nexts[link.child if direction == "backward" else link.parent].append(link)
    arrow = "<-" if direction == "backward" else "->"
    lines: list[str] = []
    shown = {trace.root}

    def walk(lot_code: str, prefix: str) -> None:
        branches = nexts.get(lot_code, [])
        for index, link in enumerate(branches):
            last = index == len(branches) - 1
            other = link.parent if direction == "backward" else link.child
            label = _link_label(link, trace.lots[link.parent].unit)
            again = other in shown
            lines.append(f"{prefix}{'`-- ' if last else '|-- '}{label} {arrow} "
                         + (f"{other} (shown above)" if again else _lot_line(trace.lots[other])))
            if again:
                continue
            shown.add(other)
            inner = prefix + ("    " if last else "|   ")
            # The detail lines keep the column of the lot's own branches going.
            column = "|" if nexts.get(other) else " "
            lines.extend(f"{inner}{column}   {line}"
                         for line in _details(trace, trace.lots[other], direction))
            walk(other, inner)

    walk(trace.root, "  ")
    return lines


def render(trace: Trace) -> str:
    """The trace as a tree per direction; a lot reached again is named, not repeated."""
    root = trace.lots[trace.root]
    out = [_lot_line(root), *("  " + line for line in _details(trace, root, None))]
    for direction, links in trace.links.items():
        title = ("backward: what went into it" if direction == "backward"
                 else "forward: where it went")
        out += ["", f"{title} ({trace.depth(direction)} levels, "
                    f"{len(trace.levels(direction)) - 1} lots)"]
        if links:
            out += _tree(trace, direction)
        else:
            out.append("  nothing" + (" (received, not made from other lots)"
                                      if direction == "backward" else " yet"))
    return "\n".join(out)
