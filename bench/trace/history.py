"""A synthetic plant history for the trace benchmark: coils and paint received, coils
slit into strips, stamped, deburred, painted, cured and merged onto pallets.

Six levels from a pallet back to its coils (and from a coil forward to its pallets), with
fan-in (a run takes several lots, painting takes a paint lot too) and fan-out (a coil slit
into strips, a paint lot shared by many runs). Each lot draws its inputs from lots made
near the same time, as on a real line. Written with COPY as the superuser with triggers
off (`session_replication_role = replica`), so the lots' quantities are written as the sum
of their movements directly and the audit log stays empty; nothing else uses this module.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql
from sqlalchemy import select
from sqlalchemy.orm import Session

from transactional.audit import acting
from transactional.models import (
    BomItem,
    Equipment,
    InspectionPlan,
    MaterialDefinition,
    Person,
    ProductDefinition,
    RoutingOperation,
    StorageLocation,
)

MadeBy = Literal["receive", "split", "run", "merge"]
Progress = Callable[[str], None]
COPY_CHUNK_ROWS = 50_000
LOTS_PER_RUN = 4
RUNS_PER_ORDER = 40
INSPECTION_SAMPLES = 2
OUT_OF_SPEC_SHARE = 0.01
EXTRA_OPERATORS = 16
START = dt.datetime(2025, 1, 6, 6, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Operation:
    code: str
    sequence: int
    output: str | None        # None: the product's material
    machines: tuple[str, ...]
    characteristic: str
    nominal: float
    tolerance: float
    unit: str


@dataclass(frozen=True)
class Stage:
    prefix: str               # lot codes are PREFIX-0000001
    material: str
    share: float              # of all lots
    made_by: MadeBy
    location: str
    quantity: int             # what a received or produced lot holds
    source: str | None = None  # the stage its inputs come from
    inputs: tuple[int, int] = (1, 1)  # fewest and most input lots of `source`
    extra: str | None = None  # one more input lot, from this (raw) stage
    operation: Operation | None = None


STAMP = Operation("STAMP", 10, "BRACKET-RAW", ("PRESS-1", "PRESS-2"), "hole diameter", 8.0,
                  0.1, "mm")
DEBURR = Operation("DEBURR", 20, "BRACKET-DEBURRED", ("DEBURR-1",), "burr height", 0.05,
                   0.05, "mm")
PAINT = Operation("PAINT", 30, "BRACKET-PAINTED", ("PAINT-1",), "coating thickness", 60, 15,
                  "um")
CURE = Operation("CURE", 40, None, ("OVEN-1",), "gloss", 85, 10, "GU")
OPERATIONS = (STAMP, DEBURR, PAINT, CURE)

STAGES = (
    Stage("COIL", "STEEL-COIL", 0.08, "receive", "RM-STORE", 2400),
    Stage("POWDER", "PAINT-POWDER", 0.02, "receive", "RM-STORE", 600),
    Stage("STRIP", "STEEL-STRIP", 0.14, "split", "LINE-1", 0, source="COIL"),
    Stage("STAMPED", "BRACKET-RAW", 0.17, "run", "LINE-1", 1000, source="STRIP",
          inputs=(1, 2), operation=STAMP),
    Stage("DEBURRED", "BRACKET-DEBURRED", 0.15, "run", "LINE-1", 1000, source="STAMPED",
          inputs=(1, 2), operation=DEBURR),
    Stage("PAINTED", "BRACKET-PAINTED", 0.15, "run", "LINE-2", 1000, source="DEBURRED",
          inputs=(1, 2), extra="POWDER", operation=PAINT),
    Stage("CURED", "BRACKET-A", 0.20, "run", "LINE-2", 800, source="PAINTED", inputs=(1, 2),
          operation=CURE),
    Stage("PALLET", "BRACKET-A", 0.09, "merge", "FG-STORE", 0, source="CURED"),
)
FINISHED, RAW = "PALLET", "COIL"
# Lots drawn from the same stretch of production: inputs within this many lots of the
# proportional position.
WINDOW = 3
NEW_MATERIALS = (("PAINT-POWDER", "Powder coating, RAL 9005", "raw", "kg"),
                 ("STEEL-STRIP", "Steel strip, slit", "intermediate", "kg"),
                 ("BRACKET-DEBURRED", "Bracket, deburred", "intermediate", "pcs"),
                 ("BRACKET-PAINTED", "Bracket, painted, uncured", "intermediate", "pcs"))
LOCATIONS = {"RM-STORE": "Raw material store", "LINE-1": "Line 1 buffer",
             "LINE-2": "Line 2 buffer", "FG-STORE": "Finished goods"}


@dataclass
class Shape:
    """The genealogy as numbers: which lot ids each stage holds and every link."""

    first_id: dict[str, int]
    count: dict[str, int]
    parents: list[int]        # link i: parent_lot_id
    children: list[int]       # link i: child_lot_id

    @property
    def lots(self) -> int:
        return sum(self.count.values())

    def ids(self, prefix: str) -> range:
        return range(self.first_id[prefix], self.first_id[prefix] + self.count[prefix])


def stage_counts(lots: int) -> dict[str, int]:
    counts = {stage.prefix: max(2, round(lots * stage.share)) for stage in STAGES}
    counts[FINISHED] += lots - sum(counts.values())
    return counts


def _window(rng: random.Random, position: float, size: int, picks: int) -> list[int]:
    centre = int(position)
    low, high = max(0, centre - WINDOW), min(size, centre + WINDOW + 1)
    return rng.sample(range(low, high), min(picks, high - low))


def make_shape(lots: int, seed: int) -> Shape:
    rng = random.Random(seed)
    counts = stage_counts(lots)
    first: dict[str, int] = {}
    next_id = 1
    for stage in STAGES:
        first[stage.prefix] = next_id
        next_id += counts[stage.prefix]
    parents: list[int] = []
    children: list[int] = []
    for stage in STAGES:
        if stage.source is None:
            continue
        n, sources = counts[stage.prefix], counts[stage.source]
        for index in range(n):
            child = first[stage.prefix] + index
            if stage.made_by in ("split", "merge"):
                # Whole lots go into a merge, and a strip comes from one coil: consecutive
                # groups, every source lot used exactly once.
                low, high = index * sources // n, (index + 1) * sources // n
                chosen = list(range(low, max(high, low + 1)))
            else:
                # Every source lot goes somewhere (each lot's own share of the sources),
                # plus neighbours up to the number of inputs a run takes.
                low, high = index * sources // n, (index + 1) * sources // n
                own = range(low, max(high, low + 1))
                wanted = rng.randint(*stage.inputs) - len(own)
                position = (index + 0.5) * sources / n
                extra = [i for i in _window(rng, position, sources, WINDOW * 2 + 1)
                         if i not in own][:max(0, wanted)]
                chosen = sorted([*own, *extra])
            for source_index in chosen:
                parents.append(first[stage.source] + source_index)
                children.append(child)
            if stage.extra is not None:
                position = (index + 0.5) * counts[stage.extra] / n
                extra_index = _window(rng, position, counts[stage.extra], 1)[0]
                parents.append(first[stage.extra] + extra_index)
                children.append(child)
    return Shape(first, counts, parents, children)


# --- reference rows through the ORM: materials, routing, people, locations --------------

@dataclass(frozen=True)
class Reference:
    material: dict[str, int]
    location: dict[str, int]
    operation: dict[str, int]
    plan: dict[str, int]
    machine: dict[str, int]
    operators: list[int]
    product_id: int


def add_reference(session: Session) -> Reference:
    """Materials, storage locations, the bracket's routing and more operators, on top of
    the sample plant; the caller commits."""
    acting(session, "mes-admin")
    session.add_all(MaterialDefinition(code=code, name=name, kind=kind, unit=unit)
                    for code, name, kind, unit in NEW_MATERIALS)
    session.add_all(StorageLocation(code=code, name=name) for code, name in LOCATIONS.items())
    session.add_all(Person(badge=str(1100 + n), name=f"Operator {1100 + n}")
                    for n in range(EXTRA_OPERATORS))
    session.flush()
    material = dict(session.execute(select(MaterialDefinition.code, MaterialDefinition.id))
                    .all())
    product = ProductDefinition(code="BRACKET-A", name="Bracket type A",
                                material_id=material["BRACKET-A"])
    session.add(product)
    session.flush()
    operation: dict[str, int] = {}
    plan: dict[str, int] = {}
    for op in OPERATIONS:
        row = RoutingOperation(product_id=product.id, sequence=op.sequence, code=op.code,
                               name=op.code.title(), work_center_type="LINE",
                               standard_seconds_per_unit=2.0,
                               output_material_id=material[op.output] if op.output else None)
        session.add(row)
        session.flush()
        operation[op.code] = row.id
        characteristic = InspectionPlan(operation_id=row.id, characteristic=op.characteristic,
                                        nominal=op.nominal, lower_spec=op.nominal - op.tolerance,
                                        upper_spec=op.nominal + op.tolerance, unit=op.unit,
                                        sample_size=INSPECTION_SAMPLES)
        session.add(characteristic)
        session.flush()
        plan[op.code] = characteristic.id
    for stage in STAGES:
        if stage.operation is not None:
            for source in (stage.source, stage.extra):
                if source is not None:
                    source_stage = next(s for s in STAGES if s.prefix == source)
                    session.add(BomItem(operation_id=operation[stage.operation.code],
                                        material_id=material[source_stage.material],
                                        quantity_per_unit=1))
    session.flush()
    return Reference(
        material=material,
        location=dict(session.execute(select(StorageLocation.code, StorageLocation.id))
                      .all()),
        operation=operation, plan=plan,
        machine=dict(session.execute(select(Equipment.code, Equipment.id)
                                     .where(Equipment.level == "work_unit")).all()),
        operators=list(session.scalars(select(Person.id).where(Person.badge.like("1%"))
                                       .order_by(Person.id))),
        product_id=product.id)


# --- the rows, generated and copied in ---------------------------------------------------

def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


def _null(value: int | None) -> str:
    return "\\N" if value is None else str(value)


@dataclass(frozen=True)
class Run:
    id: int
    stage: Stage
    operation: Operation
    first_lot: int
    last_lot: int
    position: int       # within its stage
    stage_runs: int


class History:
    """Every row of the synthetic history, derived from a Shape; whole-number quantities
    throughout, so each lot's movements add up to its quantity exactly."""

    def __init__(self, shape: Shape, ref: Reference, seed: int) -> None:
        self.shape, self.ref, self.rng = shape, ref, random.Random(seed + 1)
        size = shape.lots + 1
        self.stage_of: list[Stage] = [STAGES[0]] * size
        for stage in STAGES:
            for lot_id in shape.ids(stage.prefix):
                self.stage_of[lot_id] = stage
        self.run_of: list[int | None] = [None] * size
        self.runs: list[Run] = []
        for stage in STAGES:
            if stage.operation is None:
                continue
            ids = shape.ids(stage.prefix)
            firsts = range(ids.start, ids.stop, LOTS_PER_RUN)
            for position, first_lot in enumerate(firsts):
                run = Run(len(self.runs) + 1, stage, stage.operation, first_lot,
                          min(first_lot + LOTS_PER_RUN, ids.stop) - 1, position, len(firsts))
                self.runs.append(run)
                for lot_id in range(run.first_lot, run.last_lot + 1):
                    self.run_of[lot_id] = run.id
        self.orders = max(1, len(self.runs) // RUNS_PER_ORDER)
        self._quantities()

    def _quantities(self) -> None:
        shape, size = self.shape, self.shape.lots + 1
        fan_out = [0] * size
        ordinal: list[int] = []
        for parent in shape.parents:
            ordinal.append(fan_out[parent])
            fan_out[parent] += 1
        into: list[list[int]] = [[] for _ in range(size)]
        for index, child in enumerate(shape.children):
            into[child].append(index)
        self.fan_out = fan_out
        self.initial = [0] * size
        self.link_quantity = [0] * len(shape.parents)
        # Stage order: a lot's inputs are known before the lot.
        for stage in STAGES:
            for lot_id in shape.ids(stage.prefix):
                if stage.made_by in ("split", "merge"):
                    self.initial[lot_id] = sum(self._share(i, fan_out, ordinal)
                                               for i in into[lot_id])
                else:
                    self.initial[lot_id] = stage.quantity
                    for i in into[lot_id]:
                        self._share(i, fan_out, ordinal)

    def _share(self, link: int, fan_out: list[int], ordinal: list[int]) -> int:
        """What link `link` takes of its parent: an equal part, the last one the rest."""
        parent = self.shape.parents[link]
        whole, parts = self.initial[parent], fan_out[parent]
        quantity = whole // parts + (whole % parts if ordinal[link] == parts - 1 else 0)
        self.link_quantity[link] = quantity
        return quantity

    def _operator(self, run_id: int | None) -> int:
        operators = self.ref.operators
        return operators[(run_id or 0) * 7 % len(operators)]

    def work_orders(self) -> Iterator[str]:
        for order in range(1, self.orders + 1):
            yield f"{order}\tWO-{order:06d}\t{self.ref.product_id}\t4000\tcompleted\n"

    def operation_runs(self) -> Iterator[str]:
        for run in self.runs:
            machines = run.operation.machines
            started = (START + dt.timedelta(hours=2 * run.operation.sequence)
                       + dt.timedelta(minutes=30 * (run.position // len(machines))))
            lots = run.last_lot - run.first_lot + 1
            order = 1 + run.position * self.orders // run.stage_runs
            yield (f"{run.id}\t{order}\t{self.ref.operation[run.operation.code]}\t"
                   f"{self.ref.machine[machines[run.position % len(machines)]]}\t"
                   f"{self._operator(run.id)}\tcompleted\t"
                   f"{LOTS_PER_RUN * run.stage.quantity}\t{lots * run.stage.quantity}\t0\t"
                   f"{_ts(started)}\t{_ts(started + dt.timedelta(minutes=25))}\n")

    def material_lots(self) -> Iterator[str]:
        ref = self.ref
        for stage in STAGES:
            material, location = ref.material[stage.material], ref.location[stage.location]
            for index, lot_id in enumerate(self.shape.ids(stage.prefix), start=1):
                used = self.fan_out[lot_id] > 0
                yield (f"{lot_id}\t{stage.prefix}-{index:07d}\t{material}\t"
                       f"{'consumed' if used else 'available'}\t"
                       f"{0 if used else self.initial[lot_id]}\t{location}\t"
                       f"{_null(self.run_of[lot_id])}\n")

    def genealogy_links(self) -> Iterator[str]:
        kinds = {"split": "split", "merge": "merge", "run": "consumed"}
        for index, (parent, child) in enumerate(zip(self.shape.parents, self.shape.children,
                                                    strict=True)):
            stage = self.stage_of[child]
            yield (f"{index + 1}\t{parent}\t{child}\t{kinds[stage.made_by]}\t"
                   f"{_null(self.run_of[child])}\t{self.link_quantity[index]}\n")

    def lot_movements(self) -> Iterator[str]:
        ref, movement = self.ref, 0
        intake = {"receive": "receive", "split": "split_in", "run": "produce",
                  "merge": "merge_in"}
        outflow = {"split": "split_out", "merge": "merge_out", "run": "consume"}
        for stage in STAGES:
            location = ref.location[stage.location]
            for lot_id in self.shape.ids(stage.prefix):
                movement += 1
                run_id = self.run_of[lot_id]
                yield (f"{movement}\t{lot_id}\t{intake[stage.made_by]}\t"
                       f"{self.initial[lot_id]}\t{location}\t{_null(run_id)}\t"
                       f"{self._operator(run_id)}\n")
        for index, (parent, child) in enumerate(zip(self.shape.parents, self.shape.children,
                                                    strict=True)):
            movement += 1
            stage, run_id = self.stage_of[child], self.run_of[child]
            yield (f"{movement}\t{parent}\t{outflow[stage.made_by]}\t"
                   f"{-self.link_quantity[index]}\t"
                   f"{ref.location[self.stage_of[parent].location]}\t"
                   f"{_null(run_id if stage.made_by == 'run' else None)}\t"
                   f"{self._operator(run_id)}\n")

    def inspection_results(self) -> Iterator[str]:
        result = 0
        for run in self.runs:
            op = run.operation
            for sample in range(1, INSPECTION_SAMPLES + 1):
                result += 1
                # About 1 % of samples fall outside the limits (sigma = tolerance / 2.58).
                measured = round(self.rng.gauss(op.nominal, op.tolerance / 2.58), 4)
                within = abs(measured - op.nominal) <= op.tolerance
                recorded = START + dt.timedelta(hours=2 * op.sequence,
                                                minutes=30 * run.position + 20)
                yield (f"{result}\t{run.id}\t{self.ref.plan[op.code]}\t{sample}\t"
                       f"{measured}\t{'t' if within else 'f'}\t{run.first_lot}\t"
                       f"{self._operator(run.id)}\t{_ts(recorded)}\n")


TABLES: tuple[tuple[str, str, str], ...] = (
    ("work_order", "id, code, product_id, quantity, status", "work_orders"),
    ("operation_run", "id, work_order_id, operation_id, equipment_id, operator_id, status, "
     "planned_quantity, good_quantity, scrap_quantity, started_at, ended_at",
     "operation_runs"),
    ("material_lot", "id, code, material_id, status, quantity, location_id, "
     "produced_by_run_id", "material_lots"),
    ("genealogy_link", "id, parent_lot_id, child_lot_id, kind, run_id, quantity",
     "genealogy_links"),
    ("lot_movement", "id, lot_id, kind, quantity, location_id, run_id, person_id",
     "lot_movements"),
    ("inspection_result", "id, run_id, plan_id, sample_number, measured, within_spec, lot_id, "
     "recorded_by, recorded_at", "inspection_results"),
)


def _chunks(lines: Iterable[str]) -> Iterator[str]:
    buffer = io.StringIO()
    count = 0
    for line in lines:
        buffer.write(line)
        count += 1
        if count == COPY_CHUNK_ROWS:
            yield buffer.getvalue()
            buffer, count = io.StringIO(), 0
    if count:
        yield buffer.getvalue()


def copy_history(admin: psycopg.Connection[Any], history: History,
                 progress: Progress) -> dict[str, int]:
    """COPY every table of the history in one transaction, triggers off; row counts."""
    rows: dict[str, int] = {}
    with admin.transaction():
        # Superuser only: no audit or movement trigger fires (and no foreign key check),
        # which is why the generated rows are consistent by construction.
        admin.execute("SET LOCAL session_replication_role = replica")
        for table, columns, source in TABLES:
            progress(f"  COPY mes.{table}")
            count = 0
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier("mes", table),
                sql.SQL(", ").join(sql.Identifier(c.strip()) for c in columns.split(",")))
            with admin.cursor().copy(statement) as copy:
                for chunk in _chunks(getattr(history, source)()):
                    copy.write(chunk)
                    count += chunk.count("\n")
            rows[table] = count
        for table, _, _ in TABLES:
            admin.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                                  "(SELECT max(id) FROM {}))").format(
                sql.Identifier("mes", table)), (f"mes.{table}",))
    return rows
