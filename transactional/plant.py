"""Writes a checked plant definition into the database, idempotently.

Entities are matched by their codes: new ones are created, changed ones updated, unchanged
ones not touched at all (a second load writes nothing). Details owned by one entity (states
of a state model, shifts and breaks, cycle times, class memberships, calendar planned stops)
follow the file exactly. Equipment, signals, materials and people missing from the file are
kept, never deleted: time series and orders may still refer to them.
The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from transactional.models import (
    Base,
    ConditionRule,
    DowntimeReason,
    Equipment,
    FaultCodeReason,
    IdealCycleTime,
    MaterialDefinition,
    Person,
    PersonClassMembership,
    PersonnelClass,
    PlannedStop,
    Shift,
    ShiftBreak,
    ShiftCalendar,
    Signal,
    StateModel,
    StateModelState,
    WorkRequestTrigger,
)
from transactional.permissions import Action, require
from transactional.plant_file import (
    PlantDefinition,
    PlantFileError,
    TriggerThresholds,
    break_offset,
    reason_is_planned,
)

M = TypeVar("M", bound=Base)


@dataclass
class LoadReport:
    """How many rows of each table the load created, updated and deleted."""

    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        def fmt(counter: Counter[str]) -> str:
            return ", ".join(f"{n} {table}" for table, n in sorted(counter.items())) or "none"
        return (f"created: {fmt(self.created)}\nupdated: {fmt(self.updated)}\n"
                f"deleted: {fmt(self.deleted)}")


class KeyedRows:
    """The rows of one table already in the database, by natural key: `put` creates a row,
    updates the columns that differ, or leaves an equal row untouched (so a reload writes
    nothing)."""

    def __init__(self, session: Session, report: LoadReport, model: type[M],
                 key: Callable[[M], Hashable]) -> None:
        self.session = session
        self.report = report
        self.model: type[Any] = model
        self.key: Callable[[Any], Hashable] = key
        self.rows: dict[Hashable, Any] = {key(row): row for row in session.scalars(select(model))}
        self.seen: set[Hashable] = set()

    def put(self, **values: Any) -> Any:
        probe = self.model(**values)
        natural_key = self.key(probe)
        self.seen.add(natural_key)
        row = self.rows.get(natural_key)
        name = self.model.__tablename__
        if row is None:
            self.session.add(probe)
            self.rows[natural_key] = probe
            self.report.created[name] += 1
            return probe
        changed = False
        for column, value in values.items():
            if getattr(row, column) != value:
                setattr(row, column, value)
                changed = True
        if changed:
            self.report.updated[name] += 1
        return row

    def delete_unseen(self, within: Callable[[Any], bool]) -> None:
        """Delete rows under the entities just loaded that the file no longer lists."""
        for natural_key, row in list(self.rows.items()):
            if natural_key not in self.seen and within(row):
                self.session.delete(row)
                del self.rows[natural_key]
                self.report.deleted[self.model.__tablename__] += 1


def _ids(rows: Iterable[Any]) -> set[int]:
    return {row.id for row in rows}


def load_plant(session: Session, plant: PlantDefinition, source: str = "plant file") -> LoadReport:
    """Create or update everything `plant` defines; returns what changed.

    Raises PlantFileError (naming `source`) when the file clashes with what the database
    already holds; the caller's transaction must then be rolled back. The acting person
    needs CHANGE_PLANT: people, classes and memberships are audited.
    """
    require(session, Action.CHANGE_PLANT)
    problems = _signal_clashes(session, plant)
    if problems:
        raise PlantFileError(source, problems)
    report = LoadReport()
    _Loader(session, report).load(plant)
    return report


def _signal_clashes(session: Session, plant: PlantDefinition) -> list[str]:
    """A machine's state or counter signal under a new code, while the old one is still in
    the database: storing both would count the machine's parts twice."""
    existing = session.execute(
        select(Equipment.code, Signal.kind, Signal.code)
        .join(Equipment, Equipment.id == Signal.equipment_id)
        .where(Signal.kind != "process_value")).all()
    in_database = {(machine, kind): code for machine, kind, code in existing}
    in_file = {s.code for m in plant.machines for s in m.signals}
    problems = []
    for i, machine in enumerate(plant.machines):
        for j, signal in enumerate(machine.signals):
            old = in_database.get((machine.code, signal.kind))
            if signal.kind != "process_value" and old not in (None, signal.code) \
                    and old not in in_file:
                problems.append(
                    f"machines[{i}] ({machine.code}).signals[{j}] ({signal.code}): the database "
                    f"already has {old!r} as this machine's {signal.kind!r} signal; keep that "
                    "code, or retire the old signal before loading")
    return problems


class _Loader:
    def __init__(self, session: Session, report: LoadReport) -> None:
        self.session = session
        self.report = report

    def table(self, model: type[M], key: Callable[[M], Hashable]) -> KeyedRows:
        return KeyedRows(self.session, self.report, model, key)

    def load(self, plant: PlantDefinition) -> None:
        reasons = self._downtime_reasons(plant)
        calendars = self._calendars(plant, reasons)
        state_models = self._state_models(plant, reasons)
        materials = self._materials(plant)
        self._personnel(plant)
        machines = self._equipment(plant, calendars, state_models, materials)
        self._work_request_triggers(plant, state_models, machines)

    def _downtime_reasons(self, plant: PlantDefinition) -> dict[str, int]:
        table = self.table(DowntimeReason, lambda r: r.code)
        planned = reason_is_planned(plant.downtime_reasons)
        # Parents first, so each child can point at its parent's id.
        pending = list(plant.downtime_reasons)
        ids: dict[str, int] = {}
        while pending:
            ready = [r for r in pending if r.parent is None or r.parent in ids]
            for reason in ready:
                row = table.put(code=reason.code, name=reason.name, planned=planned[reason.code],
                                parent_id=ids[reason.parent] if reason.parent else None)
                self.session.flush()
                ids[reason.code] = row.id
            pending = [r for r in pending if r.code not in ids]
        return ids

    def _calendars(self, plant: PlantDefinition, reasons: dict[str, int]) -> dict[str, int]:
        calendars = self.table(ShiftCalendar, lambda c: c.code)
        shifts = self.table(Shift, lambda s: (s.shift_calendar_id, s.code))
        breaks = self.table(ShiftBreak, lambda b: (b.shift_id, b.name))
        stops = self.table(PlannedStop, lambda p: (p.shift_calendar_id, p.equipment_id,
                                                   p.starts_at, p.ends_at, p.downtime_reason_id))
        ids: dict[str, int] = {}
        for calendar in plant.shift_calendars:
            row = calendars.put(code=calendar.code, name=calendar.name, timezone=calendar.timezone)
            self.session.flush()
            ids[calendar.code] = row.id
            for shift in calendar.shifts:
                shift_row = shifts.put(shift_calendar_id=row.id, code=shift.code, name=shift.name,
                                       start_time=shift.start, duration=shift.duration,
                                       weekdays=sorted(set(shift.weekdays)))
                self.session.flush()
                for shift_break in shift.breaks:
                    breaks.put(shift_id=shift_row.id, name=shift_break.name,
                               start_offset=break_offset(shift, shift_break),
                               duration=dt.timedelta(minutes=shift_break.minutes),
                               downtime_reason_id=reasons.get(shift_break.reason or ""))
            for stop in calendar.planned_stops:
                stops.put(shift_calendar_id=row.id, equipment_id=None, starts_at=stop.starts_at,
                          ends_at=stop.ends_at, downtime_reason_id=reasons[stop.reason],
                          note=stop.note)
        loaded = set(ids.values())
        shift_ids = {s.id for s in shifts.rows.values() if s.shift_calendar_id in loaded}
        breaks.delete_unseen(lambda b: b.shift_id in shift_ids)
        self.session.flush()  # before their shifts go: the cascade would take them first
        shifts.delete_unseen(lambda s: s.shift_calendar_id in loaded)
        stops.delete_unseen(lambda p: p.shift_calendar_id in loaded)
        return ids

    def _state_models(self, plant: PlantDefinition, reasons: dict[str, int]) -> dict[str, int]:
        models = self.table(StateModel, lambda m: m.code)
        states = self.table(StateModelState, lambda s: (s.state_model_id, s.state_code))
        faults = self.table(FaultCodeReason, lambda f: (f.state_model_id, f.fault_code))
        ids: dict[str, int] = {}
        for model in plant.state_models:
            row = models.put(code=model.code, name=model.name)
            self.session.flush()
            ids[model.code] = row.id
            for state in model.states:
                states.put(state_model_id=row.id, state_code=state.code, name=state.name,
                           category=state.category)
            for fault in model.fault_codes:
                for code in fault.codes:
                    faults.put(state_model_id=row.id, fault_code=code,
                               downtime_reason_id=reasons[fault.reason])
        loaded = set(ids.values())
        states.delete_unseen(lambda s: s.state_model_id in loaded)
        faults.delete_unseen(lambda f: f.state_model_id in loaded)
        return ids

    def _materials(self, plant: PlantDefinition) -> dict[str, int]:
        table = self.table(MaterialDefinition, lambda m: m.code)
        rows = {m.code: table.put(code=m.code, name=m.name, kind=m.kind, unit=m.unit)
                for m in plant.materials}
        self.session.flush()
        return {code: row.id for code, row in rows.items()}

    def _personnel(self, plant: PlantDefinition) -> None:
        classes = self.table(PersonnelClass, lambda c: c.code)
        people = self.table(Person, lambda p: p.badge)
        memberships = self.table(PersonClassMembership,
                                 lambda m: (m.person_id, m.personnel_class_id))
        class_rows = {c.code: classes.put(code=c.code, name=c.name, role=c.role)
                      for c in plant.personnel_classes}
        person_rows = {p.badge: people.put(badge=p.badge, name=p.name, active=p.active)
                       for p in plant.personnel}
        self.session.flush()
        for person in plant.personnel:
            for cls in person.classes:
                memberships.put(person_id=person_rows[person.badge].id,
                                personnel_class_id=class_rows[cls].id)
        loaded = _ids(person_rows.values())
        memberships.delete_unseen(lambda m: m.person_id in loaded)

    def _equipment(self, plant: PlantDefinition, calendars: dict[str, int],
                   state_models: dict[str, int], materials: dict[str, int]) -> dict[str, int]:
        equipment = self.table(Equipment, lambda e: e.code)
        conditions = self.table(ConditionRule, lambda c: c.signal_id)
        signals = self.table(Signal, lambda s: s.code)
        cycle_times = self.table(IdealCycleTime, lambda c: (c.equipment_id, c.material_id))
        ids: dict[str, int] = {}

        def put(code: str, name: str, level: str, parent: str | None, **extra: Any) -> int:
            row = equipment.put(code=code, name=name, level=level,
                                parent_id=ids[parent] if parent else None,
                                parent_level=equipment.rows[parent].level if parent else None,
                                work_center_type=extra.get("work_center_type"),
                                shift_calendar_id=extra.get("shift_calendar_id"),
                                state_model_id=extra.get("state_model_id"))
            self.session.flush()
            ids[code] = row.id
            return int(row.id)

        enterprise = plant.enterprise
        put(enterprise.code, enterprise.name, "enterprise", None)
        for site in plant.sites:
            put(site.code, site.name, "site", enterprise.code,
                shift_calendar_id=calendars[site.calendar])
        for area in plant.areas:
            put(area.code, area.name, "area", area.site)
        for line in plant.lines:
            put(line.code, line.name, "work_center", line.area, work_center_type=line.type,
                shift_calendar_id=calendars[line.calendar] if line.calendar else None)
        machine_ids: set[int] = set()
        for machine in plant.machines:
            machine_id = put(machine.code, machine.name, "work_unit", machine.line,
                             state_model_id=state_models[machine.state_model])
            machine_ids.add(machine_id)
            for material, seconds in machine.ideal_cycle_times.items():
                cycle_times.put(equipment_id=machine_id, material_id=materials[material],
                                seconds=seconds)
            for signal in machine.signals:
                signal_row = signals.put(code=signal.code, name=signal.name,
                                         equipment_id=machine_id, kind=signal.kind,
                                         unit=signal.unit, low_limit=signal.low_limit,
                                         high_limit=signal.high_limit)
                if signal.condition is not None:
                    self.session.flush()
                    conditions.put(signal_id=signal_row.id,
                                   max_rate_per_minute=signal.condition.max_rate_per_minute,
                                   baseline_minutes=signal.condition.baseline_minutes,
                                   max_deviation=signal.condition.max_deviation)
        cycle_times.delete_unseen(lambda c: c.equipment_id in machine_ids)
        loaded_signals = {row.id for row in signals.rows.values()
                          if row.equipment_id in machine_ids}
        conditions.delete_unseen(lambda c: c.signal_id in loaded_signals)
        self.session.flush()
        return {m.code: ids[m.code] for m in plant.machines}

    def _work_request_triggers(self, plant: PlantDefinition, state_models: dict[str, int],
                               machines: dict[str, int]) -> None:
        """The file's thresholds replace the database's: a scope the file no longer names
        is deleted (its machines fall back to the wider scope)."""
        triggers = self.table(WorkRequestTrigger,
                              lambda t: (t.equipment_id, t.state_model_id))
        settings = plant.work_requests
        if settings is not None:
            triggers.put(equipment_id=None, state_model_id=None, **_thresholds(settings))
            for override in settings.overrides:
                triggers.put(
                    equipment_id=machines[override.machine] if override.machine else None,
                    state_model_id=(state_models[override.state_model]
                                    if override.state_model else None),
                    **_thresholds(override))
        triggers.delete_unseen(lambda t: True)
        self.session.flush()


def _minutes(value: float | None) -> float | None:
    return None if value is None else value * 60


def _thresholds(entry: TriggerThresholds) -> dict[str, Any]:
    return {"long_stop_seconds": _minutes(entry.long_stop_minutes),
            "fault_count": entry.fault_count,
            "fault_window_seconds": _minutes(entry.fault_window_minutes),
            "mtbf_below_seconds": _minutes(entry.mtbf_below_minutes),
            "out_of_limits_seconds": _minutes(entry.out_of_limits_minutes),
            "nonconformance": entry.nonconformance,
            "signal_window_seconds": _minutes(entry.signal_minutes)}
