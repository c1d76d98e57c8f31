"""Reads and checks a plant definition file (TOML or YAML) without touching the database.

Everything wrong with a file is collected and reported at once, each problem naming the
file and the key (or line, for syntax errors). Writing the checked plant is `plant.py`'s job.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from transactional.errors import FileProblems
from transactional.files import parse_toml, read_text, validated
from transactional.vocabulary import MaterialKind, SignalKind, StateCategory


class PlantFileError(FileProblems):
    """A plant file that cannot be loaded; lists every problem found."""

    refusal = "plant file rejected, nothing was written"


def _clock_time(value: Any) -> Any:
    # YAML 1.1 reads an unquoted 06:00 as the number 360 (minutes): insist on "HH:MM".
    clock = value
    if isinstance(value, str):
        try:
            clock = dt.time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a clock time like \"06:00\"") from None
    if isinstance(clock, dt.time):
        # The calendar's time zone applies; shifts and breaks are planned in whole minutes.
        if clock.tzinfo is not None or clock.second or clock.microsecond:
            raise ValueError(f"{value!r}: give hours and minutes only, like \"06:00\"")
        return clock
    raise ValueError(f"{value!r} is not a clock time; write it as a quoted \"HH:MM\"")


Code = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ClockTime = Annotated[dt.time, BeforeValidator(_clock_time)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class EnterpriseDef(_Entry):
    code: Code
    name: Name


class SiteDef(_Entry):
    code: Code
    name: Name
    calendar: Code


class AreaDef(_Entry):
    code: Code
    name: Name
    site: Code


class LineDef(_Entry):
    code: Code
    name: Name
    area: Code
    type: Code = Field(description="work-center type, matched by routing operations")
    calendar: Code | None = Field(default=None, description="overrides the site's calendar")


class ConditionDef(_Entry):
    """Condition monitoring of a process value beyond its limits (see docs/quality.md)."""

    max_rate_per_minute: PositiveFloat | None = None
    baseline_minutes: PositiveFloat | None = None
    max_deviation: PositiveFloat | None = None

    @model_validator(mode="after")
    def _baseline_pair(self) -> Self:
        if (self.baseline_minutes is None) != (self.max_deviation is None):
            raise ValueError("baseline_minutes and max_deviation go together: give both")
        if self.max_rate_per_minute is None and self.baseline_minutes is None:
            raise ValueError("give max_rate_per_minute, or baseline_minutes with "
                             "max_deviation")
        return self


class SignalDef(_Entry):
    code: Code
    name: Name
    kind: SignalKind
    unit: str | None = None
    low_limit: float | None = None
    high_limit: float | None = None
    condition: ConditionDef | None = None

    @model_validator(mode="after")
    def _limits_in_order(self) -> Self:
        if (self.low_limit is not None and self.high_limit is not None
                and self.low_limit >= self.high_limit):
            raise ValueError(f"low_limit {self.low_limit} must be below high_limit "
                             f"{self.high_limit}")
        return self


class MachineDef(_Entry):
    code: Code
    name: Name
    line: Code
    state_model: Code
    # material code -> ideal seconds per unit
    ideal_cycle_times: dict[Code, PositiveFloat] = {}
    signals: list[SignalDef] = []


class StateDef(_Entry):
    code: Annotated[int, Field(ge=0, le=2**31 - 1)]
    name: Name
    category: StateCategory


class FaultCodesDef(_Entry):
    """Machine fault codes (the state's reason code) that mean one downtime reason."""

    codes: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(min_length=1)]
    reason: Code


class StateModelDef(_Entry):
    code: Code
    name: Name
    states: Annotated[list[StateDef], Field(min_length=1)]
    fault_codes: list[FaultCodesDef] = []

    @field_validator("states")
    @classmethod
    def _has_running_state(cls, states: list[StateDef]) -> list[StateDef]:
        if not any(state.category == "running" for state in states):
            raise ValueError("needs at least one state with category 'running'")
        return states


class DowntimeReasonDef(_Entry):
    code: Code
    name: Name
    parent: Code | None = None
    planned: bool | None = Field(default=None, description="inherited from the parent if unset")


class BreakDef(_Entry):
    name: Name
    start: ClockTime
    minutes: PositiveInt
    reason: Code | None = None


class ShiftDef(_Entry):
    code: Code
    name: Name
    start: ClockTime
    end: ClockTime
    weekdays: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(min_length=1)] = [
        1, 2, 3, 4, 5]
    breaks: list[BreakDef] = []

    @property
    def duration(self) -> dt.timedelta:
        """From start to end, across midnight if need be; start == end is a 24 h shift."""
        return _offset(self.start, self.end) or dt.timedelta(hours=24)


class PlannedStopDef(_Entry):
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Code
    note: str | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"ends_at {self.ends_at} is not after starts_at {self.starts_at}")
        return self


class CalendarDef(_Entry):
    code: Code
    name: Name
    timezone: str
    shifts: Annotated[list[ShiftDef], Field(min_length=1)]
    planned_stops: list[PlannedStopDef] = []

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class MaterialDef(_Entry):
    code: Code
    name: Name
    kind: MaterialKind
    unit: Annotated[str, StringConstraints(min_length=1, max_length=16)]


class PersonnelClassDef(_Entry):
    code: Code
    name: Name
    # The role its members act in; None: the role named like the code, if any.
    role: Literal["operator", "quality", "supervisor", "planner", "maintenance",
                  "administrator"] | None = None


class PersonDef(_Entry):
    badge: Code
    name: Name
    classes: list[Code] = []
    active: bool = True


class TriggerThresholds(_Entry):
    """Thresholds of the work request triggers (docs/erp-and-cmms.md); unset inherits."""

    long_stop_minutes: PositiveFloat | None = None
    fault_count: PositiveInt | None = None
    fault_window_minutes: PositiveFloat | None = None
    mtbf_below_minutes: PositiveFloat | None = None
    out_of_limits_minutes: Annotated[float, Field(ge=0)] | None = None
    nonconformance: bool | None = None
    signal_minutes: PositiveFloat | None = None


class TriggerOverrideDef(TriggerThresholds):
    """The thresholds of one machine or of every machine of one state model."""

    machine: Code | None = None
    state_model: Code | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> Self:
        if (self.machine is None) == (self.state_model is None):
            raise ValueError("name either a machine or a state_model")
        return self


class WorkRequestsDef(TriggerThresholds):
    """Plant-wide defaults; a trigger left unset here is off unless an override sets it."""

    overrides: list[TriggerOverrideDef] = []

    @model_validator(mode="after")
    def _fault_pair(self) -> Self:
        if (self.fault_count is None) != (self.fault_window_minutes is None):
            raise ValueError("fault_count and fault_window_minutes go together: give both")
        return self


class PlantDefinition(_Entry):
    enterprise: EnterpriseDef
    shift_calendars: Annotated[list[CalendarDef], Field(min_length=1)]
    downtime_reasons: list[DowntimeReasonDef] = []
    state_models: Annotated[list[StateModelDef], Field(min_length=1)]
    materials: list[MaterialDef] = []
    personnel_classes: list[PersonnelClassDef] = []
    personnel: list[PersonDef] = []
    sites: Annotated[list[SiteDef], Field(min_length=1)]
    areas: list[AreaDef] = []
    lines: list[LineDef] = []
    machines: list[MachineDef] = []
    work_requests: WorkRequestsDef | None = None


def _offset(start: dt.time, later: dt.time) -> dt.timedelta:
    """Time from `start` to the next `later` on the clock (0 when equal)."""
    minutes = (later.hour * 60 + later.minute) - (start.hour * 60 + start.minute)
    return dt.timedelta(minutes=minutes % (24 * 60))


def break_offset(shift: ShiftDef, shift_break: BreakDef) -> dt.timedelta:
    return _offset(shift.start, shift_break.start)


# -- reading ---------------------------------------------------------------------------------

def read_plant_file(path: Path) -> PlantDefinition:
    """Parse and check `path`; raises PlantFileError listing every problem."""
    plant = validated(PlantDefinition, _parse(path), path, PlantFileError)
    problems = check_references(plant)
    if problems:
        raise PlantFileError(path, problems)
    return plant


def _parse(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return parse_toml(path, PlantFileError)
    if suffix not in (".yaml", ".yml"):
        raise PlantFileError(path, [f"unknown file type {suffix!r}: use .toml, .yaml or .yml"])
    try:
        raw = yaml.safe_load(read_text(path, PlantFileError))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PlantFileError(path, [f"YAML syntax{where}: {error.problem}"]) from None
    except yaml.YAMLError as error:
        raise PlantFileError(path, [f"YAML syntax: {error}"]) from None
    if not isinstance(raw, dict):
        raise PlantFileError(path, ["the file must be a mapping of sections at its top"])
    return raw


# -- cross references --------------------------------------------------------------------------

def _duplicates(section: str, codes: Iterable[str], what: str = "code") -> list[str]:
    return [f"{section}: duplicate {what} {code!r}"
            for code, count in Counter(codes).items() if count > 1]


def _unknown(where: str, key: str, value: str | None, known: set[str], what: str) -> list[str]:
    if value is None or value in known:
        return []
    return [f"{where}.{key}: unknown {what} {value!r}"]


def check_references(plant: PlantDefinition) -> list[str]:
    """Duplicate codes and references to things the file does not define."""
    problems: list[str] = []
    equipment_codes = [plant.enterprise.code, *(s.code for s in plant.sites),
                       *(a.code for a in plant.areas), *(li.code for li in plant.lines),
                       *(m.code for m in plant.machines)]
    problems += _duplicates("equipment (enterprise, sites, areas, lines, machines)",
                            equipment_codes)
    problems += _duplicates("shift_calendars", (c.code for c in plant.shift_calendars))
    problems += _duplicates("downtime_reasons", (r.code for r in plant.downtime_reasons))
    problems += _duplicates("state_models", (m.code for m in plant.state_models))
    problems += _duplicates("materials", (m.code for m in plant.materials))
    problems += _duplicates("personnel_classes", (c.code for c in plant.personnel_classes))
    problems += _duplicates("personnel", (p.badge for p in plant.personnel), "badge")
    problems += _duplicates("signals", (s.code for m in plant.machines for s in m.signals))

    calendars = {c.code for c in plant.shift_calendars}
    reasons = {r.code for r in plant.downtime_reasons}
    state_models = {m.code for m in plant.state_models}
    materials = {m.code for m in plant.materials}
    classes = {c.code for c in plant.personnel_classes}
    sites = {s.code for s in plant.sites}
    areas = {a.code for a in plant.areas}
    lines = {li.code for li in plant.lines}

    for i, calendar in enumerate(plant.shift_calendars):
        where = f"shift_calendars[{i}] ({calendar.code})"
        problems += _duplicates(f"{where}.shifts", (s.code for s in calendar.shifts))
        for j, shift in enumerate(calendar.shifts):
            shift_where = f"{where}.shifts[{j}] ({shift.code})"
            problems += _duplicates(f"{shift_where}.breaks", (b.name for b in shift.breaks),
                                    "name")
            for k, shift_break in enumerate(shift.breaks):
                break_where = f"{shift_where}.breaks[{k}]"
                problems += _unknown(break_where, "reason", shift_break.reason, reasons,
                                     "downtime reason")
                end = break_offset(shift, shift_break) + dt.timedelta(minutes=shift_break.minutes)
                if end > shift.duration:
                    problems.append(f"{break_where}: break {shift_break.name!r} "
                                    f"({shift_break.start:%H:%M}, {shift_break.minutes} min) "
                                    f"does not lie within the shift {shift.start:%H:%M}-"
                                    f"{shift.end:%H:%M}")
        for k, stop in enumerate(calendar.planned_stops):
            problems += _unknown(f"{where}.planned_stops[{k}]", "reason", stop.reason, reasons,
                                 "downtime reason")

    problems += _check_reason_tree(plant.downtime_reasons)
    machines = {m.code for m in plant.machines}
    overrides = plant.work_requests.overrides if plant.work_requests else []
    for i, override in enumerate(overrides):
        where = f"work_requests.overrides[{i}]"
        problems += _unknown(where, "machine", override.machine, machines, "machine")
        problems += _unknown(where, "state_model", override.state_model, state_models,
                             "state model")
    problems += _duplicates("work_requests.overrides",
                            (o.machine or f"state model {o.state_model}" for o in overrides),
                            "scope")

    for i, model in enumerate(plant.state_models):
        where = f"state_models[{i}] ({model.code})"
        problems += _duplicates(f"{where}.states", (str(s.code) for s in model.states))
        problems += _duplicates(f"{where}.fault_codes",
                                (str(c) for f in model.fault_codes for c in f.codes),
                                "fault code")
        for k, faults in enumerate(model.fault_codes):
            problems += _unknown(f"{where}.fault_codes[{k}]", "reason", faults.reason, reasons,
                                 "downtime reason")
    for i, person in enumerate(plant.personnel):
        for cls in person.classes:
            problems += _unknown(f"personnel[{i}] ({person.badge})", "classes", cls, classes,
                                 "personnel class")
    for i, site in enumerate(plant.sites):
        problems += _unknown(f"sites[{i}] ({site.code})", "calendar", site.calendar, calendars,
                             "shift calendar")
    for i, area in enumerate(plant.areas):
        problems += _unknown(f"areas[{i}] ({area.code})", "site", area.site, sites, "site")
    for i, line in enumerate(plant.lines):
        where = f"lines[{i}] ({line.code})"
        problems += _unknown(where, "area", line.area, areas, "area")
        problems += _unknown(where, "calendar", line.calendar, calendars, "shift calendar")
    for i, machine in enumerate(plant.machines):
        where = f"machines[{i}] ({machine.code})"
        problems += _unknown(where, "line", machine.line, lines, "line")
        problems += _unknown(where, "state_model", machine.state_model, state_models,
                             "state model")
        for material in machine.ideal_cycle_times:
            problems += _unknown(where, "ideal_cycle_times", material, materials, "material")
        for j, signal in enumerate(machine.signals):
            if signal.condition is not None and signal.kind != "process_value":
                problems.append(f"{where}.signals[{j}] ({signal.code}).condition: only a "
                                "process_value signal is monitored")
        kinds = Counter(s.kind for s in machine.signals if s.kind != "process_value")
        problems += [f"{where}.signals: more than one {kind!r} signal (it would be counted "
                     f"twice)" for kind, count in kinds.items() if count > 1]
    return problems


def _check_reason_tree(reasons: list[DowntimeReasonDef]) -> list[str]:
    problems: list[str] = []
    by_code = {r.code: r for r in reasons}
    for i, reason in enumerate(reasons):
        where = f"downtime_reasons[{i}] ({reason.code})"
        problems += _unknown(where, "parent", reason.parent, set(by_code), "downtime reason")
        if reason.parent is None and reason.planned is None:
            problems.append(f"{where}.planned: missing field (a top-level reason must say "
                            "whether it is planned)")
        seen = {reason.code}
        parent = by_code.get(reason.parent) if reason.parent else None
        while parent is not None:
            if parent.code in seen:
                problems.append(f"{where}.parent: the reason tree has a cycle through "
                                f"{parent.code!r}")
                break
            seen.add(parent.code)
            parent = by_code.get(parent.parent) if parent.parent else None
    return problems


def reason_is_planned(reasons: list[DowntimeReasonDef]) -> dict[str, bool]:
    """Each reason's planned flag, inherited down the tree where a reason leaves it unset."""
    by_code = {r.code: r for r in reasons}

    def planned(reason: DowntimeReasonDef) -> bool:
        while reason.planned is None:
            assert reason.parent is not None  # check_references guarantees roots say it
            reason = by_code[reason.parent]
        return reason.planned

    return {code: planned(reason) for code, reason in by_code.items()}
