"""`mes plant load`: the sample plant loads, reloads change nothing, bad files write nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import engine, session_factory
from tests.conftest import SAMPLE_PLANT
from transactional.audit import acting
from transactional.plant import LoadReport, load_plant
from transactional.plant_file import PlantFileError, read_plant_file

MES_TABLES = ("shift_calendar", "downtime_reason", "shift", "shift_break", "state_model",
              "state_model_state", "equipment", "material_definition", "ideal_cycle_time",
              "signal", "planned_stop", "person", "personnel_class", "person_class_membership",
              "fault_code_reason")


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every plant table, with xmin: a rewritten row shows even if unchanged."""
    with engine(url).connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(
            f"SELECT xmin::text, * FROM mes.{table} ORDER BY 2, 3"))] for table in MES_TABLES}


def load(url: str, path: Path) -> LoadReport:
    plant = read_plant_file(path)
    with session_factory(url)() as session, session.begin():
        acting(session, "mes-admin")
        return load_plant(session, plant)


def test_sample_plant_loads_with_its_hierarchy(db_url: str) -> None:
    report = load(db_url, SAMPLE_PLANT)

    assert report.created["equipment"] == 13
    assert report.created["signal"] == 48
    with engine(db_url).connect() as conn:
        levels: dict[str, int] = dict(conn.execute(text(
            "SELECT level, count(*) FROM mes.equipment GROUP BY level")).all())
        assert levels == {"enterprise": 1, "site": 1, "area": 1, "work_center": 2,
                          "work_unit": 8}
        machines_per_line: dict[str, int] = dict(conn.execute(text(
            "SELECT line.code, count(*) FROM mes.equipment m "
            "JOIN mes.equipment line ON line.id = m.parent_id "
            "WHERE m.level = 'work_unit' GROUP BY line.code")).all())
        assert machines_per_line == {"L1": 4, "L2": 4}
        shifts = conn.execute(text(
            "SELECT code, start_time, duration FROM mes.shift ORDER BY start_time")).all()
        assert [tuple(s) for s in shifts] == [
            ("EARLY", dt.time(6), dt.timedelta(hours=8)),
            ("LATE", dt.time(14), dt.timedelta(hours=8))]
        breakfast = conn.execute(text(
            "SELECT start_offset, duration FROM mes.shift_break WHERE name = 'Breakfast'")).one()
        assert tuple(breakfast) == (dt.timedelta(hours=3), dt.timedelta(minutes=15))
        planned: dict[str, bool] = dict(conn.execute(text(
            "SELECT code, planned FROM mes.downtime_reason")).all())
        # Children inherit `planned` from their parents, two levels down.
        assert planned["BREAK"] is True and planned["BREAKDOWN-MECH"] is False
        cycle = conn.execute(text(
            "SELECT c.seconds FROM mes.ideal_cycle_time c "
            "JOIN mes.equipment e ON e.id = c.equipment_id "
            "JOIN mes.material_definition m ON m.id = c.material_id "
            "WHERE e.code = 'PAINT-1' AND m.code = 'BRACKET-B'")).scalar_one()
        assert cycle == 3.5
        running = conn.execute(text(
            "SELECT s.state_code FROM mes.state_model_state s WHERE category = 'running'"
        )).scalars().all()
        assert running == [1]


def test_fault_codes_load_per_state_model_and_follow_the_file(
        db_url: str, tmp_path: Path) -> None:
    query = text("SELECT f.fault_code, r.code FROM mes.fault_code_reason f "
                 "JOIN mes.downtime_reason r ON r.id = f.downtime_reason_id "
                 "JOIN mes.state_model m ON m.id = f.state_model_id "
                 "WHERE m.code = 'STD' ORDER BY f.fault_code")
    report = load(db_url, SAMPLE_PLANT)

    assert report.created["fault_code_reason"] == 20
    with engine(db_url).connect() as conn:
        mapping: dict[int, str] = {code: reason for code, reason in conn.execute(query)}
    assert mapping[1] == "BREAKDOWN-MECH" and mapping[9] == "BREAKDOWN-ELEC"
    assert mapping[20] == "MATERIAL"

    changed = tmp_path / "plant.toml"
    changed.write_text(SAMPLE_PLANT.read_text().replace(
        "{ codes = [15, 16, 17, 18, 19, 20], reason = \"MATERIAL\" }",
        "{ codes = [15, 16], reason = \"BREAKDOWN-MECH\" }"))
    report = load(db_url, changed)

    assert report.updated == {"fault_code_reason": 2}
    assert report.deleted == {"fault_code_reason": 4}
    with engine(db_url).connect() as conn:
        mapping = {code: reason for code, reason in conn.execute(query)}
    assert mapping[15] == "BREAKDOWN-MECH" and 17 not in mapping


def test_loading_twice_changes_nothing(db_url: str) -> None:
    load(db_url, SAMPLE_PLANT)
    before = snapshot(db_url)

    report = load(db_url, SAMPLE_PLANT)

    assert not report.changed
    assert snapshot(db_url) == before


def test_a_changed_file_updates_in_place(db_url: str, tmp_path: Path) -> None:
    load(db_url, SAMPLE_PLANT)
    with engine(db_url).connect() as conn:
        press_id = conn.execute(text(
            "SELECT id FROM mes.equipment WHERE code = 'PRESS-1'")).scalar_one()
    changed = tmp_path / "plant.toml"
    changed.write_text(
        SAMPLE_PLANT.read_text()
        .replace('name = "Press 1"', 'name = "Press 1 (600 t)"')
        .replace('  { name = "Snack", start = "17:00", minutes = 15, reason = "BREAK" },\n', ""))

    report = load(db_url, changed)

    assert report.updated == {"equipment": 1}
    assert report.deleted == {"shift_break": 1}
    assert not report.created
    with engine(db_url).connect() as conn:
        row = conn.execute(text(
            "SELECT id, name FROM mes.equipment WHERE code = 'PRESS-1'")).one()
        assert tuple(row) == (press_id, "Press 1 (600 t)")
        breaks = conn.execute(text("SELECT name FROM mes.shift_break ORDER BY name")).scalars()
        assert list(breaks) == ["Breakfast", "Dinner", "Lunch"]


def test_yaml_plant_file_loads_like_toml(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("""
enterprise: {code: E1, name: Enterprise}
shift_calendars:
  - code: CAL
    name: Day shift
    timezone: UTC
    shifts:
      - {code: DAY, name: Day, start: "07:00", end: "15:30", weekdays: [1, 2, 3]}
state_models:
  - code: SM
    name: States
    states: [{code: 1, name: Running, category: running}]
sites: [{code: S1, name: Site, calendar: CAL}]
areas: [{code: A1, name: Area, site: S1}]
lines: [{code: LN1, name: Line, area: A1, type: ASSEMBLY}]
machines:
  - code: M1
    name: Machine
    line: LN1
    state_model: SM
    signals: [{code: M1.state, name: State, kind: state}]
""")
    report = load(db_url, path)

    assert report.created["equipment"] == 5
    with engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT duration FROM mes.shift")).scalar_one() == \
            dt.timedelta(hours=8, minutes=30)


# -- bad files ---------------------------------------------------------------------------------

def _edit(old: str, new: str) -> str:
    source = SAMPLE_PLANT.read_text()
    assert old in source, old
    return source.replace(old, new, 1)


BAD_FILES = {
    "unknown parent": (
        _edit('line = "L2"', 'line = "L9"'),
        "machines[4] (PAINT-1).line: unknown line 'L9'"),
    "duplicate name": (
        _edit('code = "PRESS-2"', 'code = "PRESS-1"'),
        "duplicate code 'PRESS-1'"),
    "missing field": (
        _edit('state_model = "STD"\n', ""),
        "machines[0] (PRESS-1).state_model: missing field"),
    "wrong type": (
        _edit('"BRACKET-RAW" = 2.0', '"BRACKET-RAW" = "fast"'),
        "machines[0] (PRESS-1).ideal_cycle_times.BRACKET-RAW: Input should be a valid number"),
    "wrong type for a limit": (
        _edit("low_limit = 10.0", 'low_limit = "ten"'),
        "machines[0] (PRESS-1).signals[3] (PRESS-1.temperature).low_limit: "
        "Input should be a valid number"),
    "misspelt key": (
        _edit('state_model = "STD"', 'state_modle = "STD"'),
        "machines[0] (PRESS-1).state_modle: unknown field"),
    "unknown downtime reason": (
        _edit('minutes = 15, reason = "BREAK"', 'minutes = 15, reason = "COFFEE"'),
        "breaks[0].reason: unknown downtime reason 'COFFEE'"),
    "break outside its shift": (
        _edit('start = "09:00", minutes = 15', 'start = "13:50", minutes = 15'),
        "does not lie within the shift 06:00-14:00"),
    "reason tree with a cycle": (
        _edit('code = "PLANNED"\nname = "Planned stop"\nplanned = true',
              'code = "PLANNED"\nname = "Planned stop"\nplanned = true\nparent = "PM"'),
        "the reason tree has a cycle"),
    "two good counters on one machine": (
        _edit('{ code = "PRESS-1.reject", name = "Rejected parts", kind = "reject_count"',
              '{ code = "PRESS-1.reject", name = "Rejected parts", kind = "good_count"'),
        "more than one 'good_count' signal"),
    "unknown time zone": (
        _edit('timezone = "Europe/Berlin"', 'timezone = "Europe/Atlantis"'),
        "unknown time zone 'Europe/Atlantis'"),
    "clock time with a time zone": (
        _edit('start = "06:00"', 'start = "06:00+02:00"'),
        "shifts[0] (EARLY).start: '06:00+02:00': give hours and minutes only"),
    "limit that is not a number": (
        _edit("high_limit = 90.0", "high_limit = nan"),
        "(PRESS-1.temperature).high_limit: Input should be a finite number"),
    "state code beyond what a PLC register holds": (
        _edit('{ code = 5, name = "Fault"', '{ code = 5000000000, name = "Fault"'),
        "states[5].code: Input should be less than or equal to 2147483647"),
    "fault code mapped to an unknown reason": (
        _edit('reason = "BREAKDOWN-ELEC" }', 'reason = "ELECTRICS" }'),
        "fault_codes[1].reason: unknown downtime reason 'ELECTRICS'"),
    "fault code mapped twice": (
        _edit("codes = [9, 10,", "codes = [8, 10,"),
        "state_models[0] (STD).fault_codes: duplicate fault code '8'"),
    "TOML syntax error": (
        _edit('name = "Acme Components"', 'name = "Acme Components'),
        "TOML syntax: "),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_file_is_rejected_whole_and_writes_nothing(
        kind: str, db_url: str, tmp_path: Path) -> None:
    content, expected = BAD_FILES[kind]
    path = tmp_path / "plant.toml"
    path.write_text(content)
    load(db_url, SAMPLE_PLANT)
    before = snapshot(db_url)

    with pytest.raises(PlantFileError) as caught:
        load(db_url, path)

    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert snapshot(db_url) == before


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(_edit('name = "Acme Components"', 'name = "Acme Components'))
    with pytest.raises(PlantFileError, match=r"line 6"):
        read_plant_file(path)


def test_bad_yaml_and_unknown_file_types(tmp_path: Path) -> None:
    yaml_path = tmp_path / "plant.yaml"
    yaml_path.write_text("enterprise: [unclosed\n")
    with pytest.raises(PlantFileError,
                       match=r"YAML syntax at line 2, column 1: expected ',' or ']'"):
        read_plant_file(yaml_path)
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text("enterprise: {code: E, name: E}\n"
                        "shift_calendars: [{code: C, name: C, timezone: UTC, shifts: "
                        "[{code: S, name: S, start: 06:00, end: 14:00}]}]\n")
    with pytest.raises(PlantFileError, match=r"shifts\[0\] \(S\)\.end: 840 is not a clock time"):
        read_plant_file(unquoted)
    ini = tmp_path / "plant.ini"
    ini.write_text("[plant]\n")
    with pytest.raises(PlantFileError, match=r"unknown file type '.ini'"):
        read_plant_file(ini)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "plant.toml"
    path.write_text(_edit('line = "L2"', 'line = "L9"').replace('timezone = "Europe/Berlin"',
                                                                  'timezone = "Mars/Olympus"'))
    with pytest.raises(PlantFileError) as caught:
        read_plant_file(path)
    # Pydantic finds the time zone first; references are checked once the shape is right.
    assert len(caught.value.problems) == 1
    path.write_text(_edit('line = "L2"', 'line = "L9"').replace('area = "NORTH-FAB"\ntype',
                                                                  'area = "SOUTH"\ntype'))
    with pytest.raises(PlantFileError) as caught:
        read_plant_file(path)
    # Both lines sit in an unknown area, and PAINT-1 on an unknown line.
    assert len(caught.value.problems) == 3


def test_a_second_counter_under_a_new_code_is_refused(db_url: str, tmp_path: Path) -> None:
    """A clash only the database can show (a row written outside the file) is named by key."""
    without_state = tmp_path / "without_state.toml"
    without_state.write_text(_edit(
        '  { code = "PRESS-1.state", name = "Machine state", kind = "state" },\n', ""))
    load(db_url, without_state)
    with engine(db_url).begin() as conn:
        conn.execute(text(
            "INSERT INTO mes.signal (code, name, equipment_id, kind) SELECT 'LEGACY.state', "
            "'Legacy state', id, 'state' FROM mes.equipment WHERE code = 'PRESS-1'"))
    renamed = tmp_path / "renamed.toml"
    renamed.write_text(_edit('name = "Washer 1"', 'name = "Washer 1 (new)"'))
    before = snapshot(db_url)

    with pytest.raises(PlantFileError) as caught:
        load(db_url, renamed)

    assert caught.value.problems == [
        "machines[0] (PRESS-1).signals[0] (PRESS-1.state): the database already has "
        "'LEGACY.state' as this machine's 'state' signal; keep that code, or retire the old "
        "signal before loading"]
    assert snapshot(db_url) == before


def test_database_refusal_rolls_back_the_whole_load(db_url: str, tmp_path: Path) -> None:
    """A file that is consistent in itself but turns an existing line into a site: the
    database refuses (the line's machines would hang under a site) and nothing stays."""
    load(db_url, SAMPLE_PLANT)
    other = tmp_path / "other.yaml"
    other.write_text("""
enterprise: {code: OTHER, name: Other enterprise}
shift_calendars:
  - {code: OTHER-CAL, name: Day, timezone: UTC,
     shifts: [{code: DAY, name: Day, start: "07:00", end: "15:00"}]}
state_models:
  - {code: OTHER-SM, name: States, states: [{code: 1, name: Running, category: running}]}
sites: [{code: L1, name: Former line, calendar: OTHER-CAL}]
""")
    before = snapshot(db_url)

    with pytest.raises(IntegrityError, match="fk_equipment_parent"):
        load(db_url, other)

    assert snapshot(db_url) == before


@pytest.mark.filterwarnings("error")
def test_removing_a_shift_removes_its_breaks(db_url: str, tmp_path: Path) -> None:
    load(db_url, SAMPLE_PLANT)
    source = SAMPLE_PLANT.read_text()
    start = source.index('[[shift_calendars.shifts]]\ncode = "LATE"')
    end = source.index("[[shift_calendars.planned_stops]]")
    early_only = tmp_path / "early_only.toml"
    early_only.write_text(source[:start] + source[end:])

    report = load(db_url, early_only)

    assert report.deleted == {"shift": 1, "shift_break": 2}
    with engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM mes.shift_break")).scalar_one() == 2

def test_database_refuses_a_machine_directly_under_a_site(session: Session) -> None:
    session.execute(text(
        "INSERT INTO mes.equipment (code, name, level) VALUES ('E', 'E', 'enterprise')"))
    session.execute(text(
        "INSERT INTO mes.equipment (code, name, level, parent_id, parent_level) "
        "SELECT 'S', 'S', 'site', id, 'enterprise' FROM mes.equipment WHERE code = 'E'"))
    with pytest.raises(IntegrityError, match="ck_equipment_parent_level"):
        session.execute(text(
            "INSERT INTO mes.equipment (code, name, level, parent_id, parent_level, "
            "state_model_id) SELECT 'M', 'M', 'work_unit', id, 'site', NULL "
            "FROM mes.equipment WHERE code = 'S'"))
    session.rollback()


def test_cli_load_reports_and_fails_cleanly(use_database: str, tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["plant", "load", str(SAMPLE_PLANT)])
    assert first.exit_code == 0, first.output
    assert "loaded" in first.output and "13 equipment" in first.output

    again = runner.invoke(app, ["plant", "load", str(SAMPLE_PLANT)])
    assert again.exit_code == 0
    assert "already up to date" in again.output

    bad = tmp_path / "bad.toml"
    bad.write_text(_edit('line = "L2"', 'line = "L9"'))
    before = snapshot(use_database)
    failed = runner.invoke(app, ["plant", "load", str(bad)])
    assert failed.exit_code == 1
    assert "nothing was written" in failed.output
    assert "unknown line 'L9'" in failed.output
    assert "Traceback" not in failed.output
    assert snapshot(use_database) == before
