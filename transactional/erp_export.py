"""Actuals back to ERP: per work order and operation, what was produced (by material and
lot), scrapped and consumed, start and end, machine time, labor hours by person and status,
as B2MML V0700 `OperationsPerformance` (checked against the official schema before anything
is written), CSV and Parquet.

Exports are idempotent: each record carries its order, the order's version and a SHA-256
digest of its content; a record sent before with the same digest is left out unless asked
for, one whose digest changed goes again as a change. The figures come from the `erp` views,
so ERP querying them sees the same numbers. Nothing here commits: the caller owns the
transaction, and the bookkeeping of an export is only kept if its files were written.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from lxml import etree
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session

from transactional.erp_import import B2MML, b2mml_schema
from transactional.errors import FileProblems, MesError
from transactional.files import RequiredText
from transactional.models import ErpExport, ErpExportRecord, ExportChange
from transactional.permissions import Action, require

SCHEMA_FILE = "B2MML-OperationsPerformance.xsd"
ItemKind = Literal["produced", "scrapped", "consumed", "labor", "machine"]
# B2MML ResponseState for the order's and the operation's status.
ORDER_STATE = {"created": "Ready", "released": "Ready", "in_progress": "Running",
               "on_hold": "Holding", "completed": "Completed", "closed": "Completed",
               "cancelled": "Aborted"}
OPERATION_STATE = {"running": "Running", "completed": "Completed", "aborted": "Aborted"}

OPERATIONS = text("""
SELECT wo.id AS work_order_id, ro.id AS operation_id, oa.*
FROM erp.operation_actual oa
JOIN mes.work_order wo ON wo.code = oa.order_id
JOIN mes.routing_operation ro
    ON ro.product_id = wo.product_id AND ro.sequence = oa.operation_sequence
WHERE CAST(:since AS timestamptz) IS NULL OR oa.last_activity_at >= :since
ORDER BY oa.order_id, oa.operation_sequence
""")
PRODUCED = text("""
SELECT order_id, operation_sequence, material_id, lot_id, quality, quantity, unit, produced_at
FROM erp.production_actual WHERE order_id = ANY(:orders)
ORDER BY order_id, operation_sequence, quality, lot_id NULLS LAST
""")
CONSUMED = text("""
SELECT order_id, operation_sequence, material_id, lot_id, quantity, unit, last_consumed_at
FROM erp.material_consumption WHERE order_id = ANY(:orders)
ORDER BY order_id, operation_sequence, lot_id
""")
LABOR = text("""
SELECT order_id, operation_sequence, person_id, person_name, hours
FROM erp.labor_actual WHERE order_id = ANY(:orders)
ORDER BY order_id, operation_sequence, person_id
""")
MACHINES = text("""
SELECT order_id, operation_sequence, machine_id, seconds
FROM erp.machine_actual WHERE order_id = ANY(:orders)
ORDER BY order_id, operation_sequence, machine_id
""")
LAST_SENT = text("""
SELECT DISTINCT ON (work_order_id, operation_id) work_order_id, operation_id, digest
FROM mes.erp_export_record
ORDER BY work_order_id, operation_id, id DESC
""")


class ExportError(MesError):
    """An export that cannot be made or written; the message says why."""


class AckFileError(FileProblems):
    refusal = "acknowledgement file refused, nothing was marked"


@dataclass(frozen=True)
class Item:
    """One line of an operation's actuals: a produced or consumed lot, scrap, a person's
    labor hours or a machine's time."""

    kind: ItemKind
    quantity: float
    unit: str
    material: str | None = None
    lot: str | None = None
    person: str | None = None
    person_name: str | None = None
    machine: str | None = None

    def content(self) -> dict[str, Any]:
        return {"kind": self.kind, "quantity": round(self.quantity, 6), "unit": self.unit,
                "material": self.material, "lot": self.lot, "person": self.person,
                "machine": self.machine}


@dataclass(frozen=True)
class ActualRecord:
    """The actuals of one operation of one work order, as ERP receives them."""

    work_order_id: int
    operation_id: int
    order_id: str
    order_version: int
    order_status: str
    operation_sequence: int
    operation_code: str
    operation_name: str
    operation_status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    material: str
    good_quantity: float
    scrap_quantity: float
    unit: str
    machine_seconds: float
    runs: int
    items: tuple[Item, ...] = ()
    change: ExportChange = "new"

    @property
    def labor_hours(self) -> float:
        return sum(item.quantity for item in self.items if item.kind == "labor")

    @property
    def digest(self) -> str:
        """SHA-256 of what the record says (not of its order's version: a change of the
        order that changes no actual is not sent again)."""
        content = {
            "order": self.order_id, "order_status": self.order_status,
            "operation": self.operation_sequence, "operation_code": self.operation_code,
            "status": self.operation_status, "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at), "material": self.material,
            "good": round(self.good_quantity, 6), "scrap": round(self.scrap_quantity, 6),
            "unit": self.unit, "machine_seconds": round(self.machine_seconds, 3),
            "runs": self.runs, "items": [item.content() for item in self.items]}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ActualsExport:
    """What one export sends: its id (0 until recorded), when, and its records."""

    records: tuple[ActualRecord, ...]
    export_id: int = 0
    published_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def document_id(self) -> str:
        return f"MES-ACTUALS-{self.export_id}"

    def summary(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for record in self.records:
            counts[record.change] += 1
        if not self.records:
            return "nothing new to export"
        parts = [f"{counts[c]} {c}" for c in ("new", "change", "repeat") if counts[c]]
        return f"export {self.export_id}: {len(self.records)} records ({', '.join(parts)})"


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if moment else None


def _items(session: Session, orders: Sequence[str]) -> dict[tuple[str, int], list[Item]]:
    found: dict[tuple[str, int], list[Item]] = defaultdict(list)
    params = {"orders": list(orders)}
    for row in session.execute(PRODUCED, params).mappings():
        kind: ItemKind = "produced" if row["quality"] == "good" else "scrapped"
        found[row["order_id"], row["operation_sequence"]].append(Item(
            kind, row["quantity"], row["unit"], material=row["material_id"], lot=row["lot_id"]))
    for row in session.execute(CONSUMED, params).mappings():
        found[row["order_id"], row["operation_sequence"]].append(Item(
            "consumed", row["quantity"], row["unit"], material=row["material_id"],
            lot=row["lot_id"]))
    for row in session.execute(LABOR, params).mappings():
        found[row["order_id"], row["operation_sequence"]].append(Item(
            "labor", row["hours"], "h", person=row["person_id"],
            person_name=row["person_name"]))
    for row in session.execute(MACHINES, params).mappings():
        found[row["order_id"], row["operation_sequence"]].append(Item(
            "machine", row["seconds"], "s", machine=row["machine_id"]))
    return found


def current_actuals(session: Session, since: dt.datetime | None = None) -> list[ActualRecord]:
    """Every order operation with a run (with activity since `since`), as of now."""
    rows = session.execute(OPERATIONS, {"since": since}).mappings().all()
    items = _items(session, sorted({row["order_id"] for row in rows}))
    return [ActualRecord(
        work_order_id=row["work_order_id"], operation_id=row["operation_id"],
        order_id=row["order_id"], order_version=row["order_version"],
        order_status=row["order_status"], operation_sequence=row["operation_sequence"],
        operation_code=row["operation_code"], operation_name=row["operation_name"],
        operation_status=row["operation_status"], started_at=row["started_at"],
        ended_at=row["ended_at"], material=row["material_id"],
        good_quantity=row["good_quantity"], scrap_quantity=row["scrap_quantity"],
        unit=row["unit"], machine_seconds=row["machine_seconds"], runs=row["runs"],
        items=tuple(items.get((row["order_id"], row["operation_sequence"]), ())))
        for row in rows]


def pending_actuals(session: Session, since: dt.datetime | None = None,
                    include_unchanged: bool = False) -> list[ActualRecord]:
    """The records an export sends: new ones, changed ones (as `change`), and with
    `include_unchanged` those already sent as they are (as `repeat`)."""
    sent = {(w, o): digest for w, o, digest in session.execute(LAST_SENT).all()}
    pending: list[ActualRecord] = []
    for record in current_actuals(session, since):
        before = sent.get((record.work_order_id, record.operation_id))
        if before is None:
            pending.append(record)
        elif before != record.digest:
            pending.append(replace(record, change="change"))
        elif include_unchanged:
            pending.append(replace(record, change="repeat"))
    return pending


def record_export(session: Session, records: Sequence[ActualRecord], target: str,
                  since: dt.datetime | None = None) -> ActualsExport:
    """Keep what is being sent (so that the next export leaves it out) and number it."""
    export = ErpExport(target=target, since=since, records=len(records))
    session.add(export)
    session.flush()
    session.add_all(ErpExportRecord(
        export_id=export.id, work_order_id=r.work_order_id, operation_id=r.operation_id,
        order_version=r.order_version, digest=r.digest, change=r.change) for r in records)
    session.flush()
    return ActualsExport(tuple(records), export.id, export.exported_at)


# --- B2MML ------------------------------------------------------------------------------

def _el(parent: etree._Element, tag: str, value: str | None = None,
        **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{B2MML}}}{tag}", attributes)
    if value is not None:
        element.text = value
    return element


def _quantity(parent: etree._Element, amount: float, unit: str) -> None:
    quantity = _el(parent, "Quantity")
    _el(quantity, "QuantityString", _number(amount))
    _el(quantity, "DataType", "Quantity")
    _el(quantity, "UnitOfMeasure", unit)


def _number(amount: float) -> str:
    return format(round(amount, 6), "g") if abs(amount) < 1e15 else repr(amount)


def _segment_data(parent: etree._Element, key: str, value: str, data_type: str) -> None:
    data = _el(parent, "SegmentData")
    _el(data, "ID", key)
    value_element = _el(data, "Value")
    _el(value_element, "ValueString", value)
    _el(value_element, "DataType", data_type)


def _segment(response: etree._Element, record: ActualRecord) -> None:
    segment = _el(response, "SegmentResponse")
    _el(segment, "ID", f"{record.order_id}/{record.operation_sequence}")
    _el(segment, "Description", record.operation_name)
    _el(segment, "OperationsType", "Production")
    _el(segment, "ProcessSegmentID", record.operation_code)
    _el(segment, "ActualStartTime", _iso(record.started_at))
    if record.ended_at is not None:
        _el(segment, "ActualEndTime", _iso(record.ended_at))
    _el(segment, "SegmentState", OPERATION_STATE[record.operation_status])
    for key, value, data_type in (
            ("OperationSequence", str(record.operation_sequence), "Numeric"),
            ("OrderVersion", str(record.order_version), "Numeric"),
            ("OrderStatus", record.order_status, "Code"),
            ("Digest", record.digest, "Identifier"),
            ("Change", record.change, "Code"),
            ("Runs", str(record.runs), "Numeric"),
            ("MachineSeconds", _number(record.machine_seconds), "Measure")):
        _segment_data(segment, key, value, data_type)
    for item in record.items:
        if item.kind == "labor":
            person = _el(segment, "PersonnelActual")
            _el(person, "PersonID", item.person)
            if item.person_name:
                _el(person, "Description", item.person_name)
            _el(person, "PersonnelUse", "Labor")
            _quantity(person, item.quantity, item.unit)
    for item in record.items:
        if item.kind == "machine":
            machine = _el(segment, "EquipmentActual")
            _el(machine, "EquipmentID", item.machine)
            _el(machine, "EquipmentUse", "Production")
            _quantity(machine, item.quantity, item.unit)
    for item in record.items:
        if item.kind in ("produced", "scrapped", "consumed"):
            material = _el(segment, "MaterialActual")
            _el(material, "MaterialDefinitionID", item.material)
            if item.lot is not None:
                _el(material, "MaterialLotID", item.lot)
            _el(material, "MaterialUse", "Consumed" if item.kind == "consumed" else "Produced")
            _quantity(material, item.quantity, item.unit)
            if item.kind != "consumed":
                quality = _el(material, "MaterialActualProperty")
                _el(quality, "ID", "Quality")
                quality_value = _el(quality, "Value")
                _el(quality_value, "ValueString",
                    "good" if item.kind == "produced" else "scrap")
                _el(quality_value, "DataType", "Code")


def operations_performance(export: ActualsExport) -> etree._Element:
    """The export as a B2MML OperationsPerformance document: one OperationsResponse per
    work order, one SegmentResponse per operation."""
    root = etree.Element(f"{{{B2MML}}}OperationsPerformance", nsmap={None: B2MML})
    _el(root, "ID", export.document_id)
    _el(root, "Description", "Production actuals from Open MES")
    _el(root, "OperationsType", "Production")
    _el(root, "PublishedDate", _iso(export.published_at))
    by_order: dict[str, list[ActualRecord]] = defaultdict(list)
    for record in export.records:
        by_order[record.order_id].append(record)
    for order_id, records in by_order.items():
        response = _el(root, "OperationsResponse")
        _el(response, "ID", order_id)
        _el(response, "OperationsType", "Production")
        _el(response, "OperationsRequestID", order_id)
        _el(response, "StartTime", _iso(min(r.started_at for r in records)))
        if all(r.ended_at is not None for r in records):
            _el(response, "EndTime", _iso(max(r.ended_at for r in records if r.ended_at)))
        _el(response, "ResponseState", ORDER_STATE[records[0].order_status])
        for record in records:
            _segment(response, record)
    return root


def b2mml_bytes(export: ActualsExport) -> bytes:
    """The B2MML document, refused (ExportError) unless valid against the official
    OperationsPerformance schema."""
    root = operations_performance(export)
    schema = b2mml_schema(SCHEMA_FILE)
    if not schema.validate(root):
        problems = "; ".join(f"{e.message}" for e in schema.error_log)
        raise ExportError(f"the B2MML export is not valid against {SCHEMA_FILE}, nothing "
                          f"was written: {problems}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                pretty_print=True))


# --- CSV and Parquet: one row per item, with its record's columns ----------------------

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("export_id", pa.int32()), ("order_id", pa.string()), ("order_version", pa.int32()),
    ("order_status", pa.string()), ("operation", pa.int32()),
    ("operation_code", pa.string()), ("operation_status", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")), ("ended_at", pa.timestamp("us", tz="UTC")),
    ("change", pa.string()), ("digest", pa.string()), ("item", pa.string()),
    ("material", pa.string()), ("lot", pa.string()), ("person", pa.string()),
    ("machine", pa.string()), ("quantity", pa.float64()), ("unit", pa.string()),
)
ARROW_SCHEMA = pa.schema(list(COLUMNS))


def rows(export: ActualsExport) -> list[dict[str, Any]]:
    """Every item of every record as a flat row (the CSV and Parquet layout)."""
    flat: list[dict[str, Any]] = []
    for record in export.records:
        base = {"export_id": export.export_id, "order_id": record.order_id,
                "order_version": record.order_version, "order_status": record.order_status,
                "operation": record.operation_sequence,
                "operation_code": record.operation_code,
                "operation_status": record.operation_status,
                "started_at": record.started_at, "ended_at": record.ended_at,
                "change": record.change, "digest": record.digest}
        for item in record.items:
            flat.append({**base, "item": item.kind, "material": item.material,
                         "lot": item.lot, "person": item.person, "machine": item.machine,
                         "quantity": item.quantity, "unit": item.unit})
    return flat


def csv_text(export: ActualsExport) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[name for name, _ in COLUMNS],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows(export):
        writer.writerow({key: _iso(value) if isinstance(value, dt.datetime)
                         else ("" if value is None else value) for key, value in row.items()})
    return buffer.getvalue()


def arrow_table(export: ActualsExport) -> pa.Table:
    return pa.Table.from_pylist(rows(export), schema=ARROW_SCHEMA)


def _write_atomically(path: Path, content: bytes) -> None:
    # A reader of the outbox never sees half a file: write beside it, then rename.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def write_files(export: ActualsExport, xml_path: Path) -> list[Path]:
    """The B2MML document at `xml_path`, and the same records as CSV and Parquet beside it
    (same name, `.csv` and `.parquet`). The XML is validated before any file is written."""
    document = b2mml_bytes(export)
    parquet = io.BytesIO()
    pq.write_table(arrow_table(export), parquet)
    paths = [xml_path, xml_path.with_suffix(".csv"), xml_path.with_suffix(".parquet")]
    try:
        xml_path.parent.mkdir(parents=True, exist_ok=True)
        for path, content in zip(paths, (document, csv_text(export).encode(),
                                         parquet.getvalue()), strict=True):
            _write_atomically(path, content)
    except OSError as error:
        raise ExportError(f"cannot write the export to {xml_path}: {error}") from None
    return paths


def export_actuals(session: Session, out: Path, since: dt.datetime | None = None,
                   include_unchanged: bool = False) -> tuple[ActualsExport, list[Path]]:
    """Export what ERP has not seen yet to `out` (.xml, with .csv and .parquet beside it).
    With nothing to send, no file is written and nothing is recorded."""
    require(session, Action.EXPORT_ERP)
    if out.suffix.lower() != ".xml":
        raise ExportError(f"{out}: name the B2MML file with .xml (the .csv and .parquet "
                          "files are written beside it)")
    records = pending_actuals(session, since, include_unchanged)
    if not records:
        return ActualsExport(()), []
    export = record_export(session, records, str(out), since)
    return export, write_files(export, out)


def export_to_outbox(session: Session, outbox: Path) -> tuple[ActualsExport, list[Path]]:
    """The export for a scheduled job (a Dagster asset): what is pending, into `outbox` as
    `actuals-<export id>.xml/.csv/.parquet`; nothing when nothing changed."""
    records = pending_actuals(session)
    if not records:
        return ActualsExport(()), []
    export = record_export(session, records, str(outbox))
    return export, write_files(export, outbox / f"actuals-{export.export_id:06d}.xml")


# --- Acknowledgements -------------------------------------------------------------------

class AckRow(BaseModel):
    """One record ERP confirms: its order, operation and the digest it booked."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    order_id: RequiredText
    operation: int
    digest: RequiredText


def read_ack_file(path: Path) -> list[AckRow]:
    """ERP's confirmations: a CSV with the columns order_id, operation, digest (the export's
    own CSV is accepted as it is) or JSON `{"acknowledged": [{...}]}`."""
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AckFileError(path, [f"cannot read it: {error}"]) from None
    entries: list[tuple[str, Mapping[str, Any]]]
    if path.suffix.lower() == ".json":
        try:
            document = json.loads(content)
        except json.JSONDecodeError as error:
            raise AckFileError(path, [f"not JSON: {error}"]) from None
        listed = document.get("acknowledged") if isinstance(document, dict) else None
        if not isinstance(listed, list):
            raise AckFileError(path, ['expected {"acknowledged": [...]}'])
        entries = [(f"acknowledged[{i}]", e if isinstance(e, dict) else {})
                   for i, e in enumerate(listed)]
    elif path.suffix.lower() == ".csv":
        entries = [(f"line {i + 2}", row) for i, row in enumerate(
            csv.DictReader(io.StringIO(content)))]
    else:
        raise AckFileError(path, ["name it .csv or .json"])
    acks: list[AckRow] = []
    problems: list[str] = []
    for where, entry in entries:
        try:
            acks.append(AckRow.model_validate(dict(entry)))
        except ValidationError as error:
            problems.extend(f"{where}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in error.errors())
    if problems:
        raise AckFileError(path, problems)
    # The export's CSV has a row per item: each record once.
    return list(dict.fromkeys(acks))


ACKNOWLEDGE = text("""
UPDATE mes.erp_export_record er SET acknowledged_at = now()
FROM mes.work_order wo, mes.routing_operation ro
WHERE er.work_order_id = wo.id AND er.operation_id = ro.id
  AND wo.code = :order_id AND ro.sequence = :operation AND er.digest = :digest
  AND er.acknowledged_at IS NULL
RETURNING er.id
""")


@dataclass(frozen=True)
class AckReport:
    marked: int
    unknown: tuple[str, ...]  # "order/operation" ERP confirmed that was never sent so

    def summary(self) -> str:
        text_ = f"{self.marked} exported records marked as confirmed by ERP"
        if self.unknown:
            text_ += f"; not found as exported (or already confirmed): {', '.join(self.unknown)}"
        return text_


def acknowledge(session: Session, acks: Iterable[AckRow]) -> AckReport:
    """Mark the exported records ERP confirmed (matched by order, operation and digest)."""
    require(session, Action.EXPORT_ERP)
    marked = 0
    unknown: list[str] = []
    for ack in acks:
        ids = session.execute(ACKNOWLEDGE, ack.model_dump()).scalars().all()
        marked += len(ids)
        if not ids:
            unknown.append(f"{ack.order_id}/{ack.operation}")
    return AckReport(marked, tuple(unknown))


def unacknowledged(session: Session) -> int:
    """Exported records ERP has not confirmed yet (their newest export only)."""
    return int(session.execute(text("""
        SELECT count(*) FROM (
            SELECT DISTINCT ON (work_order_id, operation_id) acknowledged_at
            FROM mes.erp_export_record ORDER BY work_order_id, operation_id, id DESC) newest
        WHERE acknowledged_at IS NULL""")).scalar_one())
