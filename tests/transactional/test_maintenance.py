"""`mes maintenance import`: CMMS windows in, all or nothing, idempotent, audited."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import session_factory
from tests.conftest import REPO, SAMPLE_PLANT
from transactional.audit import acting
from transactional.maintenance import (
    ImportReport,
    MaintenanceFileError,
    import_window_file,
    list_windows,
)
from transactional.models import AuditLog, Equipment, MaintenanceWindow
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

SAMPLE_JSON = REPO / "mes" / "samples" / "maintenance.json"
SAMPLE_CSV = REPO / "mes" / "samples" / "maintenance.csv"
GOOD: dict[str, object] = {
    "id": "PM-1", "machine": "PRESS-1", "starts_at": "2026-12-01T06:00:00+01:00",
    "ends_at": "2026-12-01T10:00:00+01:00", "reason": "Oil change"}


@pytest.fixture
def plant(session: Session) -> Session:
    acting(session, "mes-admin")
    load_plant(session, read_plant_file(SAMPLE_PLANT))
    session.commit()
    acting(session, "5001")  # maintenance imports the CMMS's windows
    session.commit()
    return session


def write_json(folder: Path, windows: list[dict[str, object]], name: str = "cmms.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(windows))
    return path


def windows_in_db(session: Session) -> list[tuple[object, ...]]:
    """Every window with its row version (xmin): a rewritten row shows even if unchanged."""
    return [tuple(row) for row in session.execute(text(
        "SELECT w.xmin::text, w.external_id, e.code, w.starts_at, w.ends_at, w.reason "
        "FROM mes.maintenance_window w JOIN mes.equipment e ON e.id = w.equipment_id "
        "ORDER BY w.external_id"))]


def audit_count(session: Session) -> int:
    """Audit records of maintenance windows (loading the plant audits its people too)."""
    return session.scalar(select(func.count()).select_from(AuditLog)
                          .where(AuditLog.table_name == "maintenance_window")) or 0


def import_as_maintenance(plant: Session, path: Path) -> ImportReport:
    """An import as the maintenance technician logged in (each transaction names them)."""
    acting(plant, "5001")
    return import_window_file(plant, path)


def test_sample_json_imports_and_the_csv_twin_changes_nothing(plant: Session) -> None:
    report = import_as_maintenance(plant, SAMPLE_JSON)
    plant.commit()

    assert sorted(report.created) == ["PM-2026-0412", "PM-2026-0413", "PM-2026-0420"]
    press = list_windows(plant, machine="PRESS-1")
    assert [(w.external_id, w.starts_at, w.ends_at, w.reason) for w in press] == [
        ("PM-2026-0412", dt.datetime(2026, 12, 1, 5, tzinfo=dt.UTC),
         dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC), "Hydraulic oil and filter change")]

    before, audited = windows_in_db(plant), audit_count(plant)
    again = import_as_maintenance(plant, SAMPLE_CSV)
    plant.commit()
    assert not again.changed
    assert len(again.unchanged) == 3
    assert windows_in_db(plant) == before
    assert audit_count(plant) == audited


def test_reimport_is_idempotent_and_a_changed_window_is_updated(plant: Session,
                                                                tmp_path: Path) -> None:
    path = write_json(tmp_path, [GOOD, {**GOOD, "id": "PM-2", "machine": "PRESS-2"}])
    import_as_maintenance(plant, path)
    plant.commit()
    first = windows_in_db(plant)
    row_id = plant.scalar(select(MaintenanceWindow.id)
                          .where(MaintenanceWindow.external_id == "PM-1"))

    assert not import_as_maintenance(plant, path).changed
    plant.commit()
    assert windows_in_db(plant) == first

    moved = {**GOOD, "ends_at": "2026-12-01T12:30:00+01:00", "machine": "PRESS-2",
             "reason": "Oil change and seals"}
    report = import_as_maintenance(plant, write_json(tmp_path, [moved]))
    plant.commit()
    assert report.updated == ["PM-1"]
    window = plant.scalars(select(MaintenanceWindow)
                           .where(MaintenanceWindow.external_id == "PM-1")).one()
    assert window.id == row_id
    assert window.ends_at == dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)
    assert window.reason == "Oil change and seals"
    press_2 = plant.scalar(select(Equipment.id).where(Equipment.code == "PRESS-2"))
    assert window.equipment_id == press_2
    # The window left out of the second file is kept: an export may cover part of the year.
    assert len(windows_in_db(plant)) == 2


def test_every_change_is_audited_as_the_cmms_import(plant: Session, tmp_path: Path) -> None:
    import_as_maintenance(plant, write_json(tmp_path, [GOOD]))
    plant.commit()
    import_as_maintenance(plant, write_json(tmp_path, [{**GOOD, "reason": "Seals"}]))
    plant.commit()

    records = plant.scalars(select(AuditLog).where(AuditLog.table_name == "maintenance_window")
                            .order_by(AuditLog.id)).all()
    assert [(r.actor, r.action) for r in records] == [("5001", "insert"),
                                                      ("5001", "update")]
    assert records[1].before is not None and records[1].after is not None
    assert (records[1].before["reason"], records[1].after["reason"]) == ("Oil change", "Seals")


BAD_WINDOWS: list[tuple[str, dict[str, object], list[str]]] = [
    ("unknown machine", {**GOOD, "id": "PM-9", "machine": "PRESS-9"},
     ["'PM-9'", "machine", "unknown machine 'PRESS-9'"]),
    ("a line, not a machine", {**GOOD, "id": "PM-9", "machine": "L1"},
     ["'PM-9'", "machine", "'L1' is a work center, not a machine"]),
    ("end before start", {**GOOD, "id": "PM-9", "ends_at": "2026-12-01T05:00:00+01:00"},
     ["'PM-9'", "ends_at", "is not after starts_at"]),
    ("empty window", {**GOOD, "id": "PM-9", "ends_at": GOOD["starts_at"]},
     ["'PM-9'", "ends_at", "is not after starts_at"]),
    ("no time zone", {**GOOD, "id": "PM-9", "starts_at": "2026-12-01T06:00:00"},
     ["'PM-9'", "starts_at", "needs a date, a time and a time zone offset"]),
    ("not a timestamp", {**GOOD, "id": "PM-9", "ends_at": "tomorrow at ten"},
     ["'PM-9'", "ends_at", "is not a date and time"]),
    ("duplicate id", {**GOOD, "machine": "PRESS-2"},
     ["'PM-1'", "id", "duplicate", "entry 1"]),
    ("missing field", {k: v for k, v in GOOD.items() if k != "machine"} | {"id": "PM-9"},
     ["'PM-9'", "machine", "missing"]),
    ("unknown field", {**GOOD, "id": "PM-9", "start": "2026-12-01T06:00:00+01:00"},
     ["'PM-9'", "start", "unknown field"]),
]


@pytest.mark.parametrize(("case", "bad", "expected"), BAD_WINDOWS,
                         ids=[case for case, _, _ in BAD_WINDOWS])
def test_a_bad_window_refuses_the_whole_file(plant: Session, tmp_path: Path, case: str,
                                             bad: dict[str, object],
                                             expected: list[str]) -> None:
    # A good window comes first: it must not be written either.
    path = write_json(tmp_path, [GOOD, bad])
    with pytest.raises(MaintenanceFileError) as refused:
        import_as_maintenance(plant, path)
    plant.rollback()

    message = str(refused.value)
    assert str(path) in message and "nothing was written" in message
    for part in expected:
        assert part in message
    assert windows_in_db(plant) == []
    assert audit_count(plant) == 0


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("broken.json", '[{"id": "PM-1",', "not valid JSON: line 1"),
    ("object.json", '{"id": "PM-1"}', "expected a JSON list of windows"),
    ("missing-column.csv", "id,machine,starts_at,reason\nPM-1,PRESS-1,2026-12-01T06:00Z,x\n",
     "column 'ends_at' is missing"),
    ("naive.csv", "id,machine,starts_at,ends_at,reason\n"
     "PM-1,PRESS-1,2026-12-01T06:00Z,2026-12-01T08:00Z,ok\n"
     "PM-2,PRESS-2,2026-12-01 06:00,2026-12-01T08:00Z,no zone\n",
     "window 'PM-2' (row 3), starts_at: '2026-12-01 06:00' needs a date, a time and a time "
     "zone offset"),
    ("windows.xlsx", "", "give a .json or .csv file"),
])
def test_unreadable_files_are_refused(plant: Session, tmp_path: Path, name: str,
                                      content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(MaintenanceFileError, match="nothing was written") as refused:
        import_as_maintenance(plant, path)
    plant.rollback()
    assert expected in str(refused.value)
    assert windows_in_db(plant) == []


def test_command_imports_lists_and_refuses(plant: Session, use_database: str,
                                           tmp_path: Path,
                                           log_in: Callable[..., None]) -> None:
    runner = CliRunner()
    plant.rollback()
    log_in("5001")
    result = runner.invoke(app, ["maintenance", "import", str(SAMPLE_CSV)])
    assert result.exit_code == 0, result.output
    assert "3 windows: 3 new, 0 updated, 0 unchanged" in result.output

    result = runner.invoke(app, ["maintenance", "import", str(SAMPLE_JSON)])
    assert result.exit_code == 0, result.output
    assert "already up to date" in result.output

    result = runner.invoke(app, ["maintenance", "list", "--machine", "PAINT-1"])
    assert result.exit_code == 0, result.output
    assert "PM-2026-0413" in result.output and "PM-2026-0412" not in result.output

    bad = write_json(tmp_path, [{**GOOD, "machine": "PRESS-9"}])
    result = runner.invoke(app, ["maintenance", "import", str(bad)])
    assert result.exit_code == 1
    assert "window 'PM-1' (entry 1), machine: unknown machine 'PRESS-9'" in result.output
    with session_factory(use_database)() as check:
        assert len(windows_in_db(check)) == 3
