"""Maintenance windows from the CMMS (JSON or CSV exports) into `mes.maintenance_window`.

A file is checked whole, against the plant's machines too, before anything is written; a
window is matched by the CMMS's own id, so importing a file again changes nothing and a
changed window is updated in place. Windows missing from a file are kept: an export may
cover only part of the calendar. The caller owns the transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from transactional.errors import FileProblems
from transactional.files import (
    RequiredCode,
    RequiredMoment,
    RequiredText,
    Text,
    describe_validation_error,
    plain_text,
    read_text,
)
from transactional.models import Equipment, MaintenanceWindow
from transactional.permissions import Action, require

IMPORT_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('mes.maintenance_import'))")
FIELDS = ("id", "machine", "starts_at", "ends_at", "reason")
REQUIRED = ("id", "machine", "starts_at", "ends_at")


class MaintenanceFileError(FileProblems):
    """A maintenance window file that cannot be imported; lists every problem found."""

    refusal = "maintenance windows rejected, nothing was written"


@dataclass(frozen=True)
class WindowRecord:
    """One window as the CMMS sent it, checked except for the machine's existence."""

    external_id: str
    machine: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None
    # Where it is in the file ("entry 3" in JSON, "row 4" in CSV), for messages.
    where: str


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def summary(self) -> str:
        total = len(self.created) + len(self.updated) + len(self.unchanged)
        return (f"{total} windows: {len(self.created)} new, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged")


class WindowEntry(BaseModel):
    """One window as a CMMS export gives it, in either format; checked the same for both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RequiredCode
    machine: RequiredText
    starts_at: RequiredMoment
    ends_at: RequiredMoment
    reason: Text = None

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, ends_at: dt.datetime, info: ValidationInfo) -> dt.datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at <= starts_at:
            raise ValueError(f"{ends_at.isoformat()} is not after starts_at "
                             f"{starts_at.isoformat()}")
        return ends_at


def _label(where: str, entry: Mapping[str, object]) -> str:
    try:
        external_id = plain_text(entry.get("id"))
    except ValueError:
        external_id = None
    return f"window {external_id!r} ({where})" if external_id else f"{where} (no id)"


def check_entries(entries: Iterable[tuple[str, Mapping[str, object]]]
                  ) -> tuple[list[WindowRecord], list[str]]:
    """Check each (where, fields) entry; return the good windows and every problem found."""
    windows: list[WindowRecord] = []
    problems: list[str] = []
    first_seen: dict[str, str] = {}
    for where, entry in entries:
        label = _label(where, entry)
        try:
            window = WindowEntry.model_validate(entry)
        except ValidationError as error:
            problems += [f"{label}, {describe_validation_error(entry, e, fields=FIELDS)}"
                         for e in error.errors()]
            continue
        if window.id in first_seen:
            problems.append(f"{label}, id: duplicate, {first_seen[window.id]} has the same id")
            continue
        first_seen[window.id] = where
        windows.append(WindowRecord(window.id, window.machine, window.starts_at,
                                    window.ends_at, window.reason, where))
    return windows, problems


def _json_entries(path: Path, content: str) -> list[tuple[str, Mapping[str, object]]]:
    try:
        document = json.loads(content)
    except json.JSONDecodeError as error:
        raise MaintenanceFileError(path, [
            f"not valid JSON: line {error.lineno} column {error.colno}: {error.msg}"]) from None
    if not isinstance(document, list):
        raise MaintenanceFileError(path, [
            "expected a JSON list of windows, each {id, machine, starts_at, ends_at, reason}"])
    entries: list[tuple[str, Mapping[str, object]]] = []
    problems: list[str] = []
    for number, entry in enumerate(document, start=1):
        if isinstance(entry, dict):
            entries.append((f"entry {number}", entry))
        else:
            problems.append(f"entry {number}: {entry!r} is not an object")
    if problems:
        raise MaintenanceFileError(path, problems)
    return entries


def _csv_entries(path: Path, content: str) -> list[tuple[str, Mapping[str, object]]]:
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = reader.fieldnames
    if not header:
        raise MaintenanceFileError(path, [f"no header row; expected {','.join(FIELDS)}"])
    problems = [f"header: column {name!r} is missing" for name in REQUIRED
                if name not in header]
    problems += [f"header: unknown column {name!r} (expected {', '.join(FIELDS)})"
                 for name in header if name not in FIELDS]
    if problems:
        raise MaintenanceFileError(path, problems)
    entries: list[tuple[str, Mapping[str, object]]] = []
    for row in reader:
        where = f"row {reader.line_num}"
        if None in row:
            problems.append(f"{where}: more fields than the header has columns")
            continue
        entries.append((where, {name: value for name, value in row.items()
                                if name is not None}))
    if problems:
        raise MaintenanceFileError(path, problems)
    return entries


def read_window_file(path: Path) -> list[WindowRecord]:
    """Read and check a CMMS export (.json or .csv) without touching the database."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise MaintenanceFileError(path, [
            f"unknown format {suffix or '(no extension)'!r}; give a .json or .csv file"])
    content = read_text(path, MaintenanceFileError, encoding="utf-8-sig")
    entries = _json_entries(path, content) if suffix == ".json" else _csv_entries(path, content)
    windows, problems = check_entries(entries)
    if problems:
        raise MaintenanceFileError(path, problems)
    return windows


def import_windows(session: Session, windows: Sequence[WindowRecord],
                   source: Path | str) -> ImportReport:
    """Create or update the windows by their CMMS id; all or nothing.

    `source` names the file in messages. Unknown machines (or codes that name a line or a
    site, not a machine) refuse the whole import before anything is written."""
    require(session, Action.IMPORT_MAINTENANCE)
    session.execute(IMPORT_LOCK)
    codes = {window.machine for window in windows}
    equipment = {row.code: row for row in session.scalars(
        select(Equipment).where(Equipment.code.in_(codes)))}
    problems: list[str] = []
    for window in windows:
        found = equipment.get(window.machine)
        label = f"window {window.external_id!r} ({window.where}), machine"
        if found is None:
            problems.append(f"{label}: unknown machine {window.machine!r}")
        elif found.level != "work_unit":
            problems.append(f"{label}: {window.machine!r} is a {found.level.replace('_', ' ')}, "
                            "not a machine")
    if problems:
        raise MaintenanceFileError(source, problems)

    existing = {row.external_id: row for row in session.scalars(
        select(MaintenanceWindow)
        .where(MaintenanceWindow.external_id.in_([w.external_id for w in windows]))
        .with_for_update())}
    report = ImportReport()
    for window in windows:
        wanted = {"equipment_id": equipment[window.machine].id, "starts_at": window.starts_at,
                  "ends_at": window.ends_at, "reason": window.reason}
        row = existing.get(window.external_id)
        if row is None:
            session.add(MaintenanceWindow(external_id=window.external_id, **wanted))
            report.created.append(window.external_id)
            continue
        # Only differing columns are set, so an unchanged window is not rewritten (and
        # leaves no audit record).
        changed = {name: value for name, value in wanted.items()
                   if getattr(row, name) != value}
        for name, value in changed.items():
            setattr(row, name, value)
        (report.updated if changed else report.unchanged).append(window.external_id)
    session.flush()
    return report


def import_window_file(session: Session, path: Path) -> ImportReport:
    """Read, check and import a CMMS export; nothing is written if anything is wrong."""
    return import_windows(session, read_window_file(path), path)


@dataclass(frozen=True)
class WindowView:
    external_id: str
    machine: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    reason: str | None


def list_windows(session: Session, *, machine: str | None = None,
                 ending_after: dt.datetime | None = None) -> list[WindowView]:
    """Windows by start time, optionally of one machine and only those not over yet."""
    query = (select(MaintenanceWindow, Equipment.code)
             .join(Equipment, Equipment.id == MaintenanceWindow.equipment_id)
             .order_by(MaintenanceWindow.starts_at, Equipment.code))
    if machine is not None:
        query = query.where(Equipment.code == machine)
    if ending_after is not None:
        query = query.where(MaintenanceWindow.ends_at > ending_after)
    return [WindowView(window.external_id, code, window.starts_at, window.ends_at,
                       window.reason)
            for window, code in session.execute(query)]
