"""Actuals back to ERP: the B2MML export is valid against the official schema and reads
back to what happened on the floor; CSV and Parquet say the same; a repeat export is empty;
a correction goes as a change; ERP's acknowledgement marks records; `mes erp export`."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lxml import etree
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from tests.conftest import AdminConnection
from tests.transactional.test_lots import setup_plant
from tests.transactional.test_trace import make_history
from transactional.audit import acting
from transactional.erp_export import (
    SCHEMA_FILE,
    ExportError,
    acknowledge,
    export_actuals,
    pending_actuals,
    read_ack_file,
    unacknowledged,
)
from transactional.erp_import import B2MML, b2mml_schema
from transactional.models import LaborSession

NS = {"b": B2MML}
PLANNER = "4001"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "transactional" / "b2mml"


@pytest.fixture
def history(session: Session) -> Session:
    setup_plant(session)
    make_history(session)
    acting(session, "mes-admin")
    press_1 = session.execute(text("SELECT id FROM mes.equipment WHERE code = 'PRESS-1'"))
    machine = press_1.scalar_one()
    person = session.execute(text("SELECT id FROM mes.person WHERE badge = '1001'")).scalar_one()
    # Signed on 05:00-08:00 at PRESS-1; run 1 ran there 06:00-09:30: 2 hours count.
    session.add(LaborSession(person_id=person, equipment_id=machine,
                             signed_on_at=dt.datetime(2026, 3, 2, 5, tzinfo=dt.UTC),
                             signed_off_at=dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)))
    session.commit()
    return session


def _export(session: Session, out: Path, **options: bool) -> list[Path]:
    with session.begin():
        acting(session, PLANNER)
        _, paths = export_actuals(session, out, **options)  # type: ignore[arg-type]
    return paths


def _segments(path: Path) -> dict[str, etree._Element]:
    root = etree.parse(str(path)).getroot()
    return {str(s.findtext("b:ID", namespaces=NS)): s
            for s in root.iterfind("b:OperationsResponse/b:SegmentResponse", NS)}


def _materials(segment: etree._Element) -> list[tuple[str, str | None, str, float, str]]:
    found = []
    for m in segment.iterfind("b:MaterialActual", NS):
        found.append((str(m.findtext("b:MaterialUse", namespaces=NS)),
                      m.findtext("b:MaterialLotID", namespaces=NS),
                      str(m.findtext("b:MaterialDefinitionID", namespaces=NS)),
                      float(m.findtext("b:Quantity/b:QuantityString", namespaces=NS) or "nan"),
                      str(m.findtext("b:Quantity/b:UnitOfMeasure", namespaces=NS))))
    return sorted(found, key=lambda t: (t[0], t[1] or ""))


def test_the_b2mml_export_is_schema_valid_and_reads_back(history: Session,
                                                         tmp_path: Path) -> None:
    paths = _export(history, tmp_path / "actuals.xml")

    assert [p.name for p in paths] == ["actuals.xml", "actuals.csv", "actuals.parquet"]
    document = etree.parse(str(paths[0]))
    assert b2mml_schema(SCHEMA_FILE).validate(document)
    assert document.getroot().tag == f"{{{B2MML}}}OperationsPerformance"
    segments = _segments(paths[0])
    assert set(segments) == {"WO-4711/10", "WO-4711/20"}
    stamp = segments["WO-4711/10"]
    # Press run 3 still runs: the operation is running, with no end time.
    assert stamp.findtext("b:SegmentState", namespaces=NS) == "Running"
    assert stamp.find("b:ActualEndTime", NS) is None
    assert _materials(stamp) == [
        ("Consumed", "COIL-1A", "STEEL-COIL", 200.0, "kg"),
        ("Consumed", "COIL-2", "STEEL-COIL", 80.0, "kg"),
        ("Produced", "RAW-1", "BRACKET-RAW", 200.0, "pcs"),
        ("Produced", "RAW-2", "BRACKET-RAW", 200.0, "pcs"),
    ]
    labor = [(p.findtext("b:PersonID", namespaces=NS),
              float(p.findtext("b:Quantity/b:QuantityString", namespaces=NS) or "nan"))
             for p in stamp.iterfind("b:PersonnelActual", NS)]
    assert labor == [("1001", 2.0)]
    machines = {e.findtext("b:EquipmentID", namespaces=NS):
                e.findtext("b:Quantity/b:QuantityString", namespaces=NS)
                for e in stamp.iterfind("b:EquipmentActual", NS)}
    assert machines == {"PRESS-1": "12600", "PRESS-2": "12600"}  # 3.5 h each, ended runs
    paint = segments["WO-4711/20"]
    assert paint.findtext("b:SegmentState", namespaces=NS) == "Completed"
    assert paint.findtext("b:ActualEndTime", namespaces=NS) == "2026-03-02T09:30:00Z"
    data = {d.findtext("b:ID", namespaces=NS): d.findtext("b:Value/b:ValueString",
                                                          namespaces=NS)
            for d in paint.iterfind("b:SegmentData", NS)}
    assert data["OrderVersion"] == "1" and data["Change"] == "new"
    assert len(data["Digest"] or "") == 64


def test_csv_and_parquet_hold_the_same_rows(history: Session, tmp_path: Path) -> None:
    _, csv_path, parquet = _export(history, tmp_path / "actuals.xml")
    with csv_path.open() as handle:
        csv_rows = list(csv.DictReader(handle))
    table = pq.read_table(parquet).to_pylist()
    assert len(csv_rows) == len(table) > 0
    produced = sorted((r["lot"], r["quantity"]) for r in table if r["item"] == "produced")
    assert produced == [("PAINTED-1", 400.0), ("RAW-1", 200.0), ("RAW-2", 200.0)]
    assert {r["digest"] for r in csv_rows} == {r["digest"] for r in table}
    assert table[0]["started_at"].tzinfo is not None


def test_a_repeat_export_is_empty_and_a_correction_goes_as_a_change(
        history: Session, tmp_path: Path) -> None:
    _export(history, tmp_path / "first.xml")

    assert _export(history, tmp_path / "second.xml") == []
    assert not (tmp_path / "second.xml").exists()
    with history.begin():
        repeated = pending_actuals(history, include_unchanged=True)
    assert [r.change for r in repeated] == ["repeat", "repeat"]

    # A correction: 5 of the painted parts were scrap after all.
    acting(history, "mes-admin")
    history.execute(text("UPDATE mes.operation_run SET scrap_quantity = 5 "
                         "WHERE operation_id = (SELECT id FROM mes.routing_operation "
                         "WHERE code = 'PAINT')"))
    history.commit()
    paths = _export(history, tmp_path / "third.xml")
    segments = _segments(paths[0])
    assert list(segments) == ["WO-4711/20"]
    data = {d.findtext("b:ID", namespaces=NS): d.findtext("b:Value/b:ValueString",
                                                          namespaces=NS)
            for d in segments["WO-4711/20"].iterfind("b:SegmentData", NS)}
    assert data["Change"] == "change"
    assert ("Produced", None, "BRACKET-A", 5.0, "pcs") in _materials(segments["WO-4711/20"])
    assert _export(history, tmp_path / "fourth.xml") == []


def test_the_export_csv_back_from_erp_acknowledges_its_records(
        history: Session, tmp_path: Path) -> None:
    _, csv_path, _ = _export(history, tmp_path / "actuals.xml")
    with history.begin():
        acting(history, PLANNER)
        assert unacknowledged(history) == 2
        report = acknowledge(history, read_ack_file(csv_path))
    assert report.marked == 2 and report.unknown == ()
    with history.begin():
        acting(history, PLANNER)
        assert unacknowledged(history) == 0
        again = acknowledge(history, read_ack_file(csv_path))
    assert again.marked == 0 and len(again.unknown) == 2


def test_erp_reads_the_actuals_views(history: Session, db_admin: AdminConnection) -> None:
    db_admin.execute("SET ROLE mes_erp_reader")
    try:
        rows = db_admin.execute(
            "SELECT order_id, operation_sequence, lot_id, quantity FROM erp.production_actual "
            "WHERE quality = 'good' AND lot_id IS NOT NULL ORDER BY lot_id").fetchall()
        hours = db_admin.execute("SELECT person_id, hours FROM erp.labor_actual").fetchall()
    finally:
        db_admin.execute("RESET ROLE")
    assert rows == [("WO-4711", 20, "PAINTED-1", 400.0), ("WO-4711", 10, "RAW-1", 200.0),
                    ("WO-4711", 10, "RAW-2", 200.0)]
    assert hours == [("1001", 2.0)]


def test_an_export_needs_an_xml_name(history: Session, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"\.xml"):
        _export(history, tmp_path / "actuals.csv")


@pytest.mark.skipif(shutil.which("xmllint") is None,
                    reason="xmllint (Debian's libxml2-utils) is not installed: the second, "
                           "independent schema check is skipped")
def test_xmllint_agrees_the_export_is_valid(history: Session, tmp_path: Path) -> None:
    xml = _export(history, tmp_path / "actuals.xml")[0]
    result = subprocess.run(
        ["xmllint", "--noout", "--nonet", "--schema",
         str(SCHEMA_DIR / SCHEMA_FILE), str(xml)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "validates" in result.stderr


def test_mes_erp_export_and_ack(history: Session, use_database: str, tmp_path: Path,
                                log_in: Callable[..., None]) -> None:
    runner = CliRunner()
    operator = tmp_path / "refused.xml"
    log_in("1001")
    refused = runner.invoke(app, ["erp", "export", "--out", str(operator)])
    assert refused.exit_code == 1 and "may not export actuals to ERP" in refused.output
    assert not operator.exists()
    log_in(PLANNER)
    out = tmp_path / "outbox" / "actuals.xml"
    first = runner.invoke(app, ["erp", "export", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "2 records (2 new)" in first.output and out.exists()
    second = runner.invoke(app, ["erp", "export", "--out", str(out)])
    assert "nothing new to export" in second.output
    ack = runner.invoke(app, ["erp", "export", "--ack", str(out.with_suffix(".csv"))])
    assert ack.exit_code == 0 and "2 exported records marked" in ack.output
    bad = runner.invoke(app, ["erp", "export", "--out", str(out), "--since", "yesterday"])
    assert bad.exit_code == 1 and "ISO 8601" in bad.output
