"""Production orders from ERP into work orders: B2MML OperationsSchedule XML (validated
against the official V0700 schema before it is read), CSV and JSON.

A file is checked whole and applied all or nothing. Orders are matched by their ERP order
number; an order whose fields are the same as last time is not written at all, a changed one
is updated only while it has not started. It never deletes, cancels or releases orders, and
it never commits: the caller owns the transaction.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from lxml import etree
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from transactional.errors import FileProblems
from transactional.files import (
    Moment,
    RequiredCode,
    RequiredText,
    Text,
    plain_text,
    problem_text,
    required,
    shown,
)
from transactional.limits import MAX_QUANTITY
from transactional.models import MaterialDefinition, ProductDefinition, WorkOrder
from transactional.permissions import Action, require

# Imports of order files take this lock in turn: two imports of the same new file would
# otherwise both create its orders, and the second fail on the unique code.
IMPORT_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('mes.erp_import'))")
# ERP may change an order until the shop floor starts it; after that the MES owns it.
CHANGEABLE = ("created", "released")
B2MML = "http://www.mesa.org/xml/B2MML"
NS = {"b": B2MML}
SCHEMA_FILE = "B2MML-OperationsSchedule.xsd"
# RequestState values that still mean "make this"; others (Cancelled, Completed...) are refused.
ORDERABLE_STATES = ("Forecast", "Released", "Waiting", "Ready")
COLUMNS = ("order_id", "product", "quantity", "unit", "earliest_start", "due", "priority")
REQUIRED_COLUMNS = ("order_id", "product", "quantity")
PG_INT_MAX = 2**31 - 1


class OrderFileError(FileProblems):
    """An order file refused as a whole; `problems` lists each, naming file, order and field."""

    refusal = "order file refused, nothing was imported"


@dataclass(frozen=True)
class RawOrder:
    """One order's fields as the file spells them, before any check."""

    where: str  # "line 3" or "orders[2]": for an order without an id
    fields: Mapping[str, Any]
    format_problem: str | None = None  # a problem with this order particular to its format
    # False when the file does not say which material the order makes (the format problem
    # says why), so a missing product and quantity are not reported on top.
    product_stated: bool = True


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _quantity(value: Any) -> float | None:
    if _blank(value):
        return None
    number = _number(value)
    if number is None:
        raise ValueError(f"{shown(value)} is not a number")
    if number <= 0:
        raise ValueError(f"{shown(value)} must be more than 0")
    if not math.isfinite(number) or number > MAX_QUANTITY:
        raise ValueError(f"{shown(value)} is more than {MAX_QUANTITY:g}")
    return number


def _priority(value: Any) -> int:
    if _blank(value):
        return 0
    whole = _whole(value)
    if whole is None or not 0 <= whole <= PG_INT_MAX:
        raise ValueError(f"{shown(value)} is not a whole number from 0 up")
    return whole


class OrderRow(BaseModel):
    """One order as any of the three formats gives it; the same checks for all three."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: RequiredCode
    product: RequiredText
    quantity: Annotated[float, BeforeValidator(required(_quantity))]
    unit: Text = None
    earliest_start: Moment = None
    due: Moment = None
    priority: Annotated[int, BeforeValidator(_priority)] = 0

    @field_validator("due")
    @classmethod
    def _due_after_start(cls, due: dt.datetime | None,
                         info: ValidationInfo) -> dt.datetime | None:
        start = info.data.get("earliest_start")
        if start is not None and due is not None and due < start:
            raise ValueError(f"{due.isoformat()} is before earliest_start {start.isoformat()}")
        return due


@dataclass(frozen=True)
class OrderLine:
    """One order from ERP, checked for form (not yet against the database)."""

    code: str
    product: str
    quantity: float
    unit: str | None
    planned_start: dt.datetime | None
    due_at: dt.datetime | None
    priority: int
    where: str


@dataclass(frozen=True)
class ImportReport:
    file_name: str
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]

    def summary(self) -> str:
        return (f"{len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged")


# -- reading ------------------------------------------------------------------------------------

def read_order_file(path: Path) -> list[OrderLine]:
    """Parse and check an order file by its extension (.xml, .csv, .json); raises
    OrderFileError listing every problem."""
    name = path.name
    readers = {".xml": _xml_orders, ".csv": _csv_orders, ".json": _json_orders}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise OrderFileError(name, [f"{name}: unknown file type {path.suffix!r}: "
                                    "use .xml (B2MML OperationsSchedule), .csv or .json"])
    try:
        content = path.read_bytes()
    except OSError as error:
        raise OrderFileError(name, [f"{name}: cannot read the file: {error.strerror}"]) from None
    if not content.strip():
        raise OrderFileError(name, [f"{name}: the file is empty"])
    raw_orders = reader(name, content)
    if not raw_orders:
        raise OrderFileError(name, [f"{name}: the file holds no orders"])
    problems: list[str] = []
    orders: list[OrderLine] = []
    for raw in raw_orders:
        order, order_problems = _check(name, raw)
        problems += order_problems
        if order is not None:
            orders.append(order)
    places: dict[str, list[str]] = {}
    for order in orders:
        places.setdefault(order.code, []).append(order.where)
    problems += [f"{name}: order {code}: appears {len(where)} times ({', '.join(where)}); "
                 "an order is given once per file" for code, where in places.items()
                 if len(where) > 1]
    if problems:
        raise OrderFileError(name, problems)
    return orders


def _check(name: str, raw: RawOrder) -> tuple[OrderLine | None, list[str]]:
    try:
        row, errors = OrderRow.model_validate(raw.fields), []
    except ValidationError as error:
        row, errors = None, [e for e in error.errors() if raw.product_stated
                             or e["loc"][:1] not in (("product",), ("quantity",))]
    id_errors = [e for e in errors if e["loc"][:1] == ("order_id",)]
    if id_errors:
        return None, [f"{name}: {raw.where}: {_problem(id_errors[0])}"]
    at = f"{name}: order {plain_text(raw.fields['order_id'])}"
    suffix = f" ({raw.where})"
    problems = [f"{at}: {raw.format_problem}{suffix}"] if raw.format_problem else []
    problems += [f"{at}: {_problem(e)}{suffix}" for e in errors]
    if problems or row is None:
        return None, problems
    return OrderLine(code=row.order_id, product=row.product, quantity=row.quantity,
                     unit=row.unit, planned_start=row.earliest_start, due_at=row.due,
                     priority=row.priority, where=raw.where), []


def _problem(error: ErrorDetails) -> str:
    """'quantity 'ten' is not a number': the field first, as ERP people name it."""
    field = str(error["loc"][0]) if error["loc"] else "order"
    if error["type"] == "missing":
        return f"the {field.replace('_', ' ')} is missing"
    if error["type"] == "extra_forbidden":
        return f"unknown field {field!r} (fields: {', '.join(COLUMNS)})"
    return f"{field} {problem_text(error)}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _csv_orders(name: str, content: bytes) -> list[RawOrder]:
    try:
        text = content.decode("utf-8-sig")  # spreadsheets like to start with a BOM
    except UnicodeDecodeError as error:
        raise OrderFileError(name, [f"{name}: not UTF-8 text: {error.reason}"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\x00extra")
    try:
        header = [column.strip() for column in reader.fieldnames or []]
    except csv.Error as error:
        raise OrderFileError(name, [f"{name}: line 1: CSV syntax: {error}"]) from None
    reader.fieldnames = header
    problems = [f"{name}: line 1: unknown column {column!r} (columns: {', '.join(COLUMNS)})"
                for column in header if column not in COLUMNS]
    problems += [f"{name}: line 1: the column {column!r} is missing"
                 for column in REQUIRED_COLUMNS if column not in header]
    problems += [f"{name}: line 1: the column {column!r} appears twice"
                 for column, count in Counter(header).items() if count > 1]
    if problems:
        raise OrderFileError(name, problems)
    orders = []
    try:
        for row in reader:
            fields = {key: value for key, value in row.items() if key in COLUMNS}
            if all(_blank(value) for value in fields.values()):
                continue  # a blank line between orders
            orders.append(RawOrder(
                f"line {reader.line_num}", fields,
                "the line has more fields than the header has columns"
                if row.get("\x00extra") else None))
    except csv.Error as error:
        raise OrderFileError(name, [f"{name}: line {reader.line_num}: CSV syntax: {error}"]
                             ) from None
    return orders


def _json_orders(name: str, content: bytes) -> list[RawOrder]:
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise OrderFileError(name, [f"{name}: not UTF-8 text: {error.reason}"]) from None
    except json.JSONDecodeError as error:
        raise OrderFileError(name, [f"{name}: line {error.lineno}, column {error.colno}: "
                                    f"JSON syntax: {error.msg}"]) from None
    if not isinstance(document, dict) or not isinstance(document.get("orders"), list):
        raise OrderFileError(name, [f"{name}: expected an object with a list of orders: "
                                    '{"orders": [{"order_id": ..., ...}]}'])
    unknown_keys = sorted(set(document) - {"orders"})
    if unknown_keys:
        raise OrderFileError(name, [f"{name}: unknown key {key!r} at the top (only "
                                    "'orders')" for key in unknown_keys])
    orders = []
    for i, entry in enumerate(document["orders"]):
        where = f"orders[{i}]"
        if not isinstance(entry, dict):
            raise OrderFileError(name, [f"{name}: {where}: an order must be an object"])
        orders.append(RawOrder(where, entry))
    return orders


@functools.cache
def b2mml_schema(file_name: str) -> etree.XMLSchema:
    """One of the official B2MML V0700 schemas in `transactional/b2mml/`, compiled once per
    process (about a second each)."""
    folder = resources.files("transactional") / "b2mml"
    with resources.as_file(folder / file_name) as schema_path:
        return etree.XMLSchema(etree.parse(str(schema_path)))


def operations_schedule_schema() -> etree.XMLSchema:
    """The official B2MML V0700 OperationsSchedule schema (orders from ERP)."""
    return b2mml_schema(SCHEMA_FILE)


def _xml_orders(name: str, content: bytes) -> list[RawOrder]:
    # No entities, DTDs or network: an order file is data, never instructions to the parser.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as error:
        line, column = error.position
        message = re.sub(r", line \d+, column \d+$", "", error.msg)
        raise OrderFileError(name, [f"{name}: line {line}, column {column}: not well-formed "
                                    f"XML: {message}"]) from None
    doctype = root.getroottree().docinfo
    if doctype.internalDTD is not None or doctype.system_url:
        raise OrderFileError(name, [f"{name}: a DOCTYPE declaration is not accepted in an "
                                    "order file (B2MML needs none)"])
    schema = operations_schedule_schema()
    if not schema.validate(root):
        raise OrderFileError(name, [
            f"{name}: line {entry.line}: not valid B2MML: "
            + entry.message.replace("{" + B2MML + "}", "") for entry in schema.error_log])
    if root.tag != f"{{{B2MML}}}OperationsSchedule":
        found = etree.QName(root).localname
        raise OrderFileError(name, [f"{name}: line {root.sourceline}: expected an "
                                    f"OperationsSchedule document, found {found}"])
    return [_xml_order(request) for request in root.iterfind("b:OperationsRequest", NS)]


def _child_text(element: etree._Element, path: str) -> str | None:
    found = element.find(path, NS)
    return plain_text(found.text) if found is not None else None


def _xml_order(request: etree._Element) -> RawOrder:
    """An OperationsRequest: its ID is the ERP order number; its produced material names the
    product and the quantity; its StartTime / EndTime, or else the first segment's earliest
    start and the last segment's latest end, say when."""
    segments = request.findall(".//b:SegmentRequirement", NS)
    produced: list[etree._Element] = []
    unstated: list[etree._Element] = []
    for requirement in request.iterfind(".//b:SegmentRequirement/b:MaterialRequirement", NS):
        use = _child_text(requirement, "b:MaterialUse")
        if use == "Produced":
            produced.append(requirement)
        elif use is None:
            unstated.append(requirement)
    candidates = produced or unstated
    problem = None
    product = quantity = unit = None
    if len(candidates) != 1:
        problem = ("an order makes one product: give exactly one MaterialRequirement with "
                   f"MaterialUse 'Produced' (found {len(candidates)})")
    else:
        material = candidates[0]
        product = _child_text(material, "b:MaterialDefinitionID")
        quantity = _child_text(material, "b:Quantity/b:QuantityString")
        unit = _child_text(material, "b:Quantity/b:UnitOfMeasure")
    state = _child_text(request, "b:RequestState")
    if state is not None and state not in ORDERABLE_STATES:
        problem = (f"RequestState {state!r} is not imported (only {', '.join(ORDERABLE_STATES)}"
                   "); cancel or close orders in the MES")
    start = _child_text(request, "b:StartTime")
    due = _child_text(request, "b:EndTime")
    if start is None and segments:
        start = _child_text(segments[0], "b:EarliestStartTime")
    if due is None and segments:
        due = _child_text(segments[-1], "b:LatestEndTime")
    fields = {"order_id": _child_text(request, "b:ID"), "product": product,
              "quantity": quantity, "unit": unit, "earliest_start": start, "due": due,
              "priority": _child_text(request, "b:Priority")}
    return RawOrder(f"line {request.sourceline}", fields, problem,
                    product_stated=len(candidates) == 1)


# -- applying -----------------------------------------------------------------------------------

def import_orders(session: Session, path: Path) -> ImportReport:
    """Read, check and apply one order file (see `apply_orders`)."""
    return apply_orders(session, read_order_file(path), path.name)


@dataclass(frozen=True)
class _Product:
    id: int
    code: str
    unit: str


def _products(session: Session) -> tuple[dict[str, _Product], dict[str, list[_Product]]]:
    """Products by their code, and by the code of the material they make."""
    by_code: dict[str, _Product] = {}
    by_material: dict[str, list[_Product]] = {}
    for row in session.execute(
            select(ProductDefinition.id, ProductDefinition.code, MaterialDefinition.code,
                   MaterialDefinition.unit)
            .join(MaterialDefinition, MaterialDefinition.id == ProductDefinition.material_id)):
        product = _Product(row[0], row[1], row[3])
        by_code[product.code] = product
        by_material.setdefault(row[2], []).append(product)
    return by_code, by_material


def _digest(order: OrderLine, product: _Product) -> str:
    """What ERP said about the order; equal digests mean there is nothing to write."""
    def moment(value: dt.datetime | None) -> str | None:
        return value.astimezone(dt.UTC).isoformat() if value else None

    fields = {"product": product.code, "quantity": order.quantity,
              "planned_start": moment(order.planned_start), "due_at": moment(order.due_at),
              "priority": order.priority}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _changes(row: WorkOrder, order: OrderLine, product: _Product,
             product_codes: dict[int, str]) -> list[str]:
    def shown(value: object) -> str:
        return value.isoformat() if isinstance(value, dt.datetime) else str(value)

    pairs: Iterable[tuple[str, object, object]] = (
        ("product", product_codes.get(row.product_id), product.code),
        ("quantity", row.quantity, order.quantity),
        ("earliest_start", row.planned_start, order.planned_start),
        ("due", row.due_at, order.due_at),
        ("priority", row.priority, order.priority))
    return [f"{field} {shown(old)} -> {shown(new)}" for field, old, new in pairs if old != new]


def apply_orders(session: Session, orders: Sequence[OrderLine], file_name: str) -> ImportReport:
    """Create new orders (status created), update changed ones not yet started, leave equal
    ones untouched. Raises OrderFileError, before writing anything, listing every order the
    database refuses: unknown product, wrong unit, change to an order already started.
    Imports run one at a time: a second import of the same file finds it unchanged."""
    require(session, Action.IMPORT_ERP)
    session.execute(IMPORT_LOCK)
    by_code, by_material = _products(session)
    product_codes = {p.id: p.code for p in by_code.values()}
    # Locked: a dispatcher starting an order while ERP changes it waits for this import.
    existing = {row.code: row for row in session.scalars(
        select(WorkOrder).where(WorkOrder.code.in_([o.code for o in orders]))
        .order_by(WorkOrder.code).with_for_update())}
    problems: list[str] = []
    plan: list[tuple[OrderLine, _Product, str]] = []
    for order in orders:
        at = f"{file_name}: order {order.code}"
        suffix = f" ({order.where})"
        product = by_code.get(order.product)
        makers = by_material.get(order.product, [])
        if product is None and len(makers) == 1:
            product = makers[0]
        if product is None:
            if makers:
                problems.append(f"{at}: material {order.product!r} is made by several "
                                f"products ({', '.join(sorted(p.code for p in makers))}): "
                                f"give the product code{suffix}")
            else:
                problems.append(f"{at}: unknown product {order.product!r}{suffix}")
            continue
        if order.unit is not None and order.unit != product.unit:
            problems.append(f"{at}: unit {order.unit!r} is not the unit of {product.code} "
                            f"({product.unit!r}){suffix}")
            continue
        digest = _digest(order, product)
        row = existing.get(order.code)
        if row is not None and row.source_digest != digest and row.status not in CHANGEABLE:
            changes = _changes(row, order, product, product_codes)
            if changes:
                problems.append(
                    f"{at}: ERP changed it ({'; '.join(changes)}), but it is "
                    f"{row.status.replace('_', ' ')}; only an order not yet started "
                    f"({' or '.join(CHANGEABLE)}) takes changes from ERP{suffix}")
        plan.append((order, product, digest))
    if problems:
        raise OrderFileError(file_name, problems)
    return _write(session, plan, existing, product_codes, file_name)


def _write(session: Session, plan: Iterable[tuple[OrderLine, _Product, str]],
           existing: dict[str, WorkOrder], product_codes: dict[int, str],
           file_name: str) -> ImportReport:
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for order, product, digest in plan:
        row = existing.get(order.code)
        if row is None:
            session.add(WorkOrder(
                code=order.code, product_id=product.id, quantity=order.quantity,
                status="created", priority=order.priority, due_at=order.due_at,
                planned_start=order.planned_start, source=file_name, source_digest=digest))
            created.append(order.code)
        elif row.source_digest == digest or not _changes(row, order, product, product_codes):
            # Nothing ERP says differs from the order as it stands: not one byte rewritten.
            unchanged.append(order.code)
        else:
            row.product_id = product.id
            row.quantity = order.quantity
            row.planned_start = order.planned_start
            row.due_at = order.due_at
            row.priority = order.priority
            row.source = file_name
            row.source_digest = digest
            row.version = row.version + 1
            row.updated_at = func.now()
            updated.append(order.code)
    session.flush()
    return ImportReport(file_name, tuple(created), tuple(updated), tuple(unchanged))

