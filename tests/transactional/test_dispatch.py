"""The dispatch list: ranking, sequence, setup families, machines, windows and material."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from tests.conftest import SAMPLE_PLANT
from transactional.audit import acting
from transactional.dispatch import DispatchEntry, DispatchList, dispatch_list
from transactional.errors import NotFound
from transactional.maintenance import import_window_file
from transactional.models import (
    BomItem,
    Equipment,
    LotMovement,
    MaterialDefinition,
    MaterialLot,
    OperationRun,
    Person,
    ProductDefinition,
    RoutingOperation,
    StorageLocation,
    WorkOrder,
)
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

BERLIN = ZoneInfo("Europe/Berlin")
AT = dt.datetime(2026, 12, 1, 6, 0, tzinfo=BERLIN)
HOUR = dt.timedelta(hours=1)
TOMORROW = AT + 24 * HOUR
# Sample state model STD: 0 Off (offline), 1 Running, 5 Fault (unplanned_stop).
OFF, RUNNING, FAULT = 0, 1, 5


@dataclass(frozen=True)
class Step:
    sequence: int
    code: str
    work_center_type: str = "STAMPING"
    seconds_per_unit: float = 36.0
    setup_seconds: float = 0.0
    setup_family: str | None = "A"
    materials: tuple[tuple[str, float], ...] = ()


class Floor:
    """The sample plant plus products, orders, runs and lots made through the models."""

    def __init__(self, session: Session) -> None:
        self.session = session
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
        acting(session, "4001")  # the planner
        self.store = StorageLocation(code="RM", name="Raw material store")
        session.add(self.store)
        session.flush()

    def id_of(self, model: type[Equipment | MaterialDefinition | Person], code: str) -> int:
        column = Person.badge if model is Person else model.code  # type: ignore[union-attr]
        found: int = self.session.scalars(select(model.id).where(column == code)).one()
        return found

    def product(self, code: str, steps: Sequence[Step]) -> ProductDefinition:
        product = ProductDefinition(code=code, name=code,
                                    material_id=self.id_of(MaterialDefinition, "BRACKET-A"))
        self.session.add(product)
        self.session.flush()
        for step in steps:
            operation = RoutingOperation(
                product_id=product.id, sequence=step.sequence, code=step.code, name=step.code,
                work_center_type=step.work_center_type,
                standard_seconds_per_unit=step.seconds_per_unit,
                setup_seconds=step.setup_seconds, setup_family=step.setup_family)
            self.session.add(operation)
            self.session.flush()
            for material, per_unit in step.materials:
                self.session.add(BomItem(operation_id=operation.id, quantity_per_unit=per_unit,
                                         material_id=self.id_of(MaterialDefinition, material)))
        self.session.flush()
        return product

    def order(self, code: str, product: ProductDefinition, quantity: float = 100, *,
              priority: int = 0, due_at: dt.datetime | None = TOMORROW,
              status: str = "released") -> WorkOrder:
        order = WorkOrder(code=code, product_id=product.id, quantity=quantity,
                          priority=priority, due_at=due_at, status=status)
        self.session.add(order)
        self.session.flush()
        return order

    def run(self, order: WorkOrder, sequence: int, machine: str, *, good: float = 0,
            scrap: float = 0, planned: float | None = None, status: str = "completed",
            started_at: dt.datetime = AT - 4 * HOUR) -> OperationRun:
        operation_id = self.session.scalars(select(RoutingOperation.id).where(
            RoutingOperation.product_id == order.product_id,
            RoutingOperation.sequence == sequence)).one()
        run = OperationRun(
            work_order_id=order.id, operation_id=operation_id,
            equipment_id=self.id_of(Equipment, machine),
            operator_id=self.id_of(Person, "1001"), status=status,
            planned_quantity=planned or order.quantity, good_quantity=good,
            scrap_quantity=scrap, started_at=started_at,
            ended_at=None if status == "running" else started_at + HOUR)
        self.session.add(run)
        self.session.flush()
        return run

    def receive(self, code: str, material: str, quantity: float,
                status: str = "available") -> None:
        lot = MaterialLot(code=code, material_id=self.id_of(MaterialDefinition, material),
                          location_id=self.store.id, status=status)
        self.session.add(lot)
        self.session.flush()
        self.session.add(LotMovement(lot_id=lot.id, kind="receive", quantity=quantity,
                                     location_id=self.store.id))
        self.session.flush()

    def state(self, machine: str, state: int, at: dt.datetime) -> None:
        self.session.execute(
            text("INSERT INTO ts.equipment_state (ts, equipment_id, state) "
                 "VALUES (:ts, :machine, :state)"),
            {"ts": at, "machine": self.id_of(Equipment, machine), "state": state})

    def only_presses(self) -> None:
        """Switch off the deburring and washing machines so the presses share the work."""
        for machine in ("DEBURR-1", "WASH-1"):
            self.state(machine, OFF, AT - HOUR)

    def plan(self, line: str = "L1", at: dt.datetime = AT) -> DispatchList:
        self.session.flush()
        return dispatch_list(self.session, line, at)


@pytest.fixture
def floor(session: Session) -> Floor:
    return Floor(session)


def orders(entries: Sequence[DispatchEntry]) -> list[str]:
    return [entry.work_order for entry in entries]


def slots(plan: DispatchList) -> dict[str, tuple[str | None, dt.datetime | None]]:
    return {entry.work_order: (entry.machine, entry.planned_start) for entry in plan.entries}


def test_priority_beats_due_date_and_a_changed_priority_reorders(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    floor.order("EARLY-LOW", bracket, priority=1, due_at=AT + 24 * HOUR)
    urgent = floor.order("LATE-HIGH", bracket, priority=5, due_at=AT + 5 * 24 * HOUR)

    plan = floor.plan()
    assert orders(plan.entries) == ["LATE-HIGH", "EARLY-LOW"]
    assert [entry.position for entry in plan.entries] == [1, 2]

    urgent.priority = 0
    assert orders(floor.plan().entries) == ["EARLY-LOW", "LATE-HIGH"]


def test_due_date_orders_equal_priorities(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    floor.order("A-100", bracket, priority=3, due_at=AT + 3 * 24 * HOUR)
    floor.order("B-200", bracket, priority=3, due_at=AT + 1 * 24 * HOUR)
    floor.order("C-300", bracket, priority=3, due_at=AT + 2 * 24 * HOUR)
    floor.order("D-400", bracket, priority=3, due_at=None)

    assert orders(floor.plan().entries) == ["B-200", "C-300", "A-100", "D-400"]


def test_only_released_and_running_orders_are_dispatched(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    for status in ("created", "released", "in_progress", "on_hold", "completed", "closed",
                   "cancelled"):
        floor.order(status.upper(), bracket, status=status)

    assert sorted(orders(floor.plan().entries)) == ["IN_PROGRESS", "RELEASED"]


def test_an_operation_waits_until_the_one_before_it_is_completed(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP"),
                                     Step(20, "PAINT", work_center_type="FINISHING")])
    order = floor.order("4711", bracket, quantity=100)

    finishing = floor.plan("L2")
    assert finishing.assigned == []
    assert [(e.sequence, e.held) for e in finishing.held] == [
        (20, "waiting for operation 10 STAMP (STAMPING): 0 of 100 done")]
    assert [(e.sequence, e.quantity) for e in floor.plan("L1").assigned] == [(10, 100)]

    # Running is not completed: stamping is busy with it, painting still waits.
    running = floor.run(order, 10, "PRESS-1", status="running", started_at=AT - HOUR)
    assert floor.plan("L2").assigned == []
    assert floor.plan("L1").entries == []

    running.status, running.good_quantity, running.planned_quantity = "completed", 60, 60
    running.ended_at = AT
    stamping = floor.plan("L1")
    assert [(e.sequence, e.quantity) for e in stamping.assigned] == [(10, 40)]
    assert floor.plan("L2").held[0].held == (
        "waiting for operation 10 STAMP (STAMPING): 60 of 100 done")

    floor.run(order, 10, "PRESS-2", good=38, scrap=2, planned=40)
    assert floor.plan("L1").entries == []
    painting = floor.plan("L2")
    # What stamping delivered good is what painting has to do.
    assert [(e.sequence, e.operation, e.quantity, e.held) for e in painting.entries] == [
        (20, "PAINT", 98, None)]
    assert painting.entries[0].machine is not None


def test_setup_families_are_grouped_to_save_changeovers(floor: Floor) -> None:
    for machine in ("PRESS-2", "DEBURR-1", "WASH-1"):
        floor.state(machine, OFF, AT - HOUR)
    steps = {family: floor.product(f"BR-{family}", [Step(10, "STAMP", setup_seconds=1800,
                                                         setup_family=family)])
             for family in "AB"}
    # Same priority, due the same day, families alternating in due-date order.
    families_by_due = []
    for number in range(6):
        family = "AB"[number % 2]
        families_by_due.append(family)
        floor.order(f"O-{number}", steps[family],
                    due_at=AT + 8 * HOUR + number * dt.timedelta(minutes=10))

    plan = floor.plan()
    assert [e.setup_family for e in plan.assigned] == ["A", "A", "A", "B", "B", "B"]
    assert [e.changeover for e in plan.assigned] == [True, False, False, True, False, False]
    naive = sum(1 for before, after in zip([None, *families_by_due], families_by_due,
                                           strict=False) if before != after)
    assert (plan.changeovers, naive, plan.changeovers_without_grouping) == (2, 6, 6)
    # Setup time is only spent on a changeover: entries queue back to back on PRESS-1.
    starts = [e.planned_start for e in plan.assigned]
    ends = [e.planned_end for e in plan.assigned]
    assert starts[0] == AT and starts[1:] == ends[:-1]
    assert ends[0] == AT + dt.timedelta(seconds=1800 + 3600)
    assert ends[1] == ends[0] + HOUR


def test_the_machines_last_family_goes_first(floor: Floor) -> None:
    for machine in ("PRESS-2", "DEBURR-1", "WASH-1"):
        floor.state(machine, OFF, AT - HOUR)
    products = {family: floor.product(f"BR-{family}", [Step(10, "STAMP", setup_seconds=600,
                                                            setup_family=family)])
                for family in "AB"}
    done = floor.order("DONE", products["B"], status="completed")
    floor.run(done, 10, "PRESS-1", good=100)
    floor.order("O-1", products["A"], due_at=AT + 8 * HOUR)
    floor.order("O-2", products["B"], due_at=AT + 9 * HOUR)

    plan = floor.plan()
    assert [(e.work_order, e.changeover) for e in plan.assigned] == [("O-2", False),
                                                                     ("O-1", True)]
    assert plan.machines[1].machine == "PRESS-1" and plan.machines[1].setup_family == "B"


def test_nothing_is_planned_on_a_press_inside_its_maintenance_window(
        floor: Floor, tmp_path: Path) -> None:
    floor.only_presses()
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    for number in range(1, 5):
        floor.order(f"O-{number}", bracket, due_at=AT + 8 * HOUR + number * HOUR)
    before = floor.plan()
    assert slots(before)["O-1"] == ("PRESS-1", AT)

    window_start, window_end = AT + dt.timedelta(minutes=30), AT + 2 * HOUR
    cmms = tmp_path / "cmms.json"
    cmms.write_text(json.dumps([{"id": "PM-7", "machine": "PRESS-1",
                                 "starts_at": window_start.isoformat(),
                                 "ends_at": window_end.isoformat(), "reason": "seals"}]))
    import_window_file(floor.session, cmms)

    after = floor.plan()
    assert slots(after) != slots(before)
    on_press_1 = [e for e in after.assigned if e.machine == "PRESS-1"]
    assert on_press_1, "PRESS-1 takes work again after its window"
    for entry in on_press_1:
        assert entry.planned_start is not None and entry.planned_end is not None
        assert entry.planned_end <= window_start or entry.planned_start >= window_end
    # O-1 would have run into the window on PRESS-1: it moved to PRESS-2 instead.
    assert slots(after)["O-1"] == ("PRESS-2", AT)
    press_1 = next(m for m in after.machines if m.machine == "PRESS-1")
    assert press_1.note is not None and "maintenance PM-7" in press_1.note


def test_a_press_locked_out_now_starts_after_its_window(floor: Floor, tmp_path: Path) -> None:
    for machine in ("PRESS-2", "DEBURR-1", "WASH-1"):
        floor.state(machine, OFF, AT - HOUR)
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    floor.order("O-1", bracket)
    cmms = tmp_path / "cmms.csv"
    cmms.write_text("id,machine,starts_at,ends_at,reason\n"
                    f"PM-8,PRESS-1,{(AT - HOUR).isoformat()},{(AT + 3 * HOUR).isoformat()},\n")
    import_window_file(floor.session, cmms)

    plan = floor.plan()
    assert slots(plan)["O-1"] == ("PRESS-1", AT + 3 * HOUR)
    press_1 = plan.machines[1]
    assert press_1.machine == "PRESS-1" and press_1.free_from == AT + 3 * HOUR
    assert press_1.note is not None and "locked out for maintenance PM-8" in press_1.note


def test_a_machine_in_a_fault_or_off_gets_nothing_until_it_reports_again(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    for number in range(1, 7):
        floor.order(f"O-{number}", bracket, due_at=AT + 8 * HOUR + number * HOUR)
    everywhere = {e.machine for e in floor.plan().assigned}
    assert everywhere == {"PRESS-1", "PRESS-2", "DEBURR-1", "WASH-1"}

    floor.state("PRESS-1", RUNNING, AT - 2 * HOUR)
    floor.state("PRESS-1", FAULT, AT - dt.timedelta(minutes=10))
    floor.state("PRESS-2", OFF, AT - dt.timedelta(minutes=20))
    plan = floor.plan()
    assert {e.machine for e in plan.assigned} == {"DEBURR-1", "WASH-1"}
    assert len(plan.assigned) == 6
    press_1 = next(m for m in plan.machines if m.machine == "PRESS-1")
    assert (press_1.available, press_1.state, press_1.category) == (False, "Fault",
                                                                    "unplanned_stop")

    # Back running (and a fault reported after the planning time does not count).
    floor.state("PRESS-1", RUNNING, AT - dt.timedelta(minutes=5))
    floor.state("PRESS-1", FAULT, AT + HOUR)
    assert "PRESS-1" in {e.machine for e in floor.plan().assigned}


def test_no_machine_available_holds_everything(floor: Floor) -> None:
    for machine in ("PRESS-1", "PRESS-2", "DEBURR-1", "WASH-1"):
        floor.state(machine, FAULT, AT - HOUR)
    floor.order("O-1", floor.product("BR-1", [Step(10, "STAMP")]))

    [entry] = floor.plan().entries
    assert entry.machine is None and entry.held is not None
    assert entry.held.startswith("no machine of L1 can take work (DEBURR-1: Fault")


def test_missing_material_holds_the_entry_with_the_reason(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP", materials=(("STEEL-COIL", 0.5),))])
    floor.order("FIRST", bracket, quantity=100, priority=2)
    floor.order("SECOND", bracket, quantity=100, priority=1)
    floor.receive("COIL-1", "STEEL-COIL", 70)
    floor.receive("COIL-2", "STEEL-COIL", 500, status="on_hold")

    plan = floor.plan()
    assert orders(plan.assigned) == ["FIRST"]
    [held] = plan.held
    assert (held.work_order, held.machine, held.planned_start) == ("SECOND", None, None)
    # FIRST takes 50 kg of the 70 available; the 500 kg on hold do not count.
    assert held.held == "waiting for material STEEL-COIL (need 50 kg, have 20 kg)"

    floor.receive("COIL-3", "STEEL-COIL", 30)
    assert orders(floor.plan().assigned) == ["FIRST", "SECOND"]


def test_a_running_run_keeps_its_machine_until_its_estimated_end(floor: Floor) -> None:
    for machine in ("PRESS-2", "DEBURR-1", "WASH-1"):
        floor.state(machine, OFF, AT - HOUR)
    bracket = floor.product("BR-1", [Step(10, "STAMP", setup_seconds=600)])
    busy = floor.order("BUSY", bracket, quantity=100, status="in_progress")
    floor.run(busy, 10, "PRESS-1", status="running", started_at=AT - dt.timedelta(minutes=30))
    floor.order("NEXT", bracket)

    plan = floor.plan()
    # 600 s setup + 100 x 36 s from 05:30: PRESS-1 is busy until 06:40; same family, no setup.
    [entry] = plan.entries
    assert (entry.work_order, entry.machine, entry.changeover) == ("NEXT", "PRESS-1", False)
    assert entry.planned_start == AT + dt.timedelta(minutes=40)
    assert entry.planned_end == AT + dt.timedelta(minutes=100)


def test_nothing_starts_before_the_orders_planned_start(floor: Floor) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP")])
    floor.order("LATER", bracket, priority=9).planned_start = AT + 2 * HOUR
    floor.order("NOW", bracket)

    plan = floor.plan()
    assert slots(plan)["LATER"][1] == AT + 2 * HOUR
    assert slots(plan)["NOW"][1] == AT


def test_unknown_or_wrong_work_centers_are_refused(floor: Floor) -> None:
    with pytest.raises(NotFound, match="no work center L9"):
        floor.plan("L9")
    with pytest.raises(NotFound, match="'PRESS-1' is a work unit, not a work center "
                                       r"\(line\); its line is L1"):
        floor.plan("PRESS-1")


def test_dispatch_command_prints_the_table_and_json(floor: Floor, use_database: str) -> None:
    bracket = floor.product("BR-1", [Step(10, "STAMP", materials=(("STEEL-COIL", 1.0),)),
                                     Step(20, "PAINT", work_center_type="FINISHING")])
    floor.order("4711", bracket, quantity=10, priority=5)
    floor.order("4712", bracket, quantity=10)
    floor.receive("COIL-1", "STEEL-COIL", 10)
    floor.state("PRESS-1", FAULT, AT - HOUR)
    floor.session.commit()
    runner = CliRunner()
    at = "2026-12-01T06:00:00+01:00"

    table = runner.invoke(app, ["dispatch", "--work-center", "L1", "--at", at])
    assert table.exit_code == 0, table.output
    assert "Dispatch list for L1 (STAMPING) from 2026-12-01 06:00 (Europe/Berlin)" in table.output
    assert "PRESS-1    NOT AVAILABLE: Fault" in table.output
    lines = table.output.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    for column in ("order", "operation", "product", "qty", "machine", "planned start",
                   "planned end", "setup family", "changeover", "held"):
        assert column in header
    first = next(line for line in lines if line.startswith("1 "))
    assert "4711" in first and "DEBURR-1" in first and "2026-12-01 06:00" in first
    assert "waiting for material STEEL-COIL (need 10 kg, have 0 kg)" in table.output

    as_json = runner.invoke(app, ["dispatch", "--work-center", "L1", "--at", at, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert [(e["position"], e["work_order"], e["machine"], e["held"] is None)
            for e in data["entries"]] == [(1, "4711", "DEBURR-1", True),
                                          (2, "4712", None, False)]
    assert data["entries"][0]["planned_start"] == "2026-12-01T06:00:00+01:00"
    assert data["changeovers"] == 1

    finishing = runner.invoke(app, ["dispatch", "--work-center", "L2", "--at", at])
    assert finishing.exit_code == 0, finishing.output
    assert "waiting for operation 10 STAMP (STAMPING): 0 of 10 done" in finishing.output

    for arguments, message in [
            (["--work-center", "L9"], "no work center L9"),
            (["--work-center", "L1", "--at", "2026-12-01T06:00"], "has no time zone"),
            (["--work-center", "L1", "--at", "soon"], "is not an ISO 8601 time")]:
        refused = runner.invoke(app, ["dispatch", *arguments])
        assert refused.exit_code == 1 and message in refused.output
