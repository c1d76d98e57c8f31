"""`mes erp import`: ERP orders from B2MML XML, CSV and JSON become work orders; a file is
applied whole or not at all, the same file again rewrites nothing, and an order already
started is not changed from ERP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mes.cli import app
from mes.db import engine, session_factory
from tests.conftest import REPO, SAMPLE_PLANT
from transactional.audit import acting
from transactional.erp_import import (
    ImportReport,
    OrderFileError,
    import_orders,
    read_order_file,
)
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file
from transactional.products import load_products, read_products_file

SAMPLES = REPO / "mes" / "samples"
FORMATS = ("orders.xml", "orders.csv", "orders.json")
CSV_HEADER = "order_id,product,quantity,unit,earliest_start,due,priority\n"
START = "2026-03-02T06:00:00+01:00"
DUE = "2026-03-04T22:00:00+01:00"
CET = dt.timezone(dt.timedelta(hours=1))


PLANNER = "4001"  # imports run as the planner logged in


@pytest.fixture
def products_url(db_url: str) -> str:
    """A database with the sample plant and the sample products."""
    with session_factory(db_url)() as session, session.begin():
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
        load_products(session, read_products_file(SAMPLES / "products.toml"))
    return db_url


def run_import(url: str, path: Path) -> ImportReport:
    with session_factory(url)() as session, session.begin():
        acting(session, PLANNER)
        return import_orders(session, path)


def orders(url: str) -> dict[str, tuple[object, ...]]:
    with engine(url).connect() as conn:
        return {row[0]: tuple(row[1:]) for row in conn.execute(text(
            "SELECT o.code, p.code, o.quantity, o.planned_start, o.due_at, o.priority, "
            "o.status FROM mes.work_order o "
            "JOIN mes.product_definition p ON p.id = o.product_id"))}


def stored(url: str) -> list[tuple[object, ...]]:
    """Each order row with its xmin and updated_at: a rewrite shows even with equal values."""
    with engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT code, xmin::text, updated_at, version, source_digest FROM mes.work_order "
            "ORDER BY code"))]


def audit_count(url: str) -> int:
    with engine(url).connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM mes.audit_log")).scalar_one())


def csv_file(tmp_path: Path, *rows: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text(CSV_HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def set_status(url: str, code: str, status: str) -> None:
    with session_factory(url)() as session, session.begin():
        acting(session, "3001")
        session.execute(text("UPDATE mes.work_order SET status = :status WHERE code = :code"),
                        {"status": status, "code": code})


SAMPLE_ORDERS = {
    "4711": ("BRACKET-A", 500.0, dt.datetime(2026, 3, 2, 6, tzinfo=CET),
             dt.datetime(2026, 3, 4, 22, tzinfo=CET), 2, "created"),
    "4712": ("BRACKET-B", 300.0, dt.datetime(2026, 3, 3, 6, tzinfo=CET),
             dt.datetime(2026, 3, 5, 22, tzinfo=CET), 1, "created"),
    "4713": ("BRACKET-A", 1200.0, dt.datetime(2026, 3, 5, 6, tzinfo=CET),
             dt.datetime(2026, 3, 10, 14, tzinfo=CET), 3, "created"),
}


@pytest.mark.parametrize("sample", FORMATS)
def test_each_format_creates_the_sample_orders(products_url: str, sample: str) -> None:
    report = run_import(products_url, SAMPLES / sample)

    assert report.created == ("4711", "4712", "4713")
    assert report.summary() == "3 created, 0 updated, 0 unchanged"
    assert orders(products_url) == SAMPLE_ORDERS
    with engine(products_url).connect() as conn:
        sources = conn.execute(text(
            "SELECT DISTINCT source FROM mes.work_order WHERE source_digest IS NOT NULL"
        )).scalars().all()
    assert sources == [sample]


def test_created_orders_are_audited_as_the_erp_import(products_url: str) -> None:
    run_import(products_url, SAMPLES / "orders.xml")

    with engine(products_url).connect() as conn:
        logged = conn.execute(text(
            "SELECT actor, action, after->>'code', after->>'status' FROM mes.audit_log "
            "WHERE table_name = 'work_order' ORDER BY id")).all()
    assert [tuple(row) for row in logged] == [(PLANNER, "insert", code, "created")
                                              for code in ("4711", "4712", "4713")]


@pytest.mark.parametrize("sample", FORMATS)
def test_importing_the_same_file_again_rewrites_nothing(products_url: str, sample: str) -> None:
    run_import(products_url, SAMPLES / sample)
    before, logged = stored(products_url), audit_count(products_url)

    again = run_import(products_url, SAMPLES / sample)

    assert again.unchanged == ("4711", "4712", "4713")
    assert again.summary() == "0 created, 0 updated, 3 unchanged"
    assert stored(products_url) == before
    assert audit_count(products_url) == logged


def test_the_three_formats_say_the_same(products_url: str) -> None:
    run_import(products_url, SAMPLES / "orders.xml")
    before = stored(products_url)

    for other in ("orders.csv", "orders.json"):
        assert run_import(products_url, SAMPLES / other).unchanged == ("4711", "4712", "4713")
    assert stored(products_url) == before


@pytest.mark.parametrize("status", ["created", "released"])
def test_a_changed_order_not_yet_started_is_updated(products_url: str, tmp_path: Path,
                                                     status: str) -> None:
    run_import(products_url, SAMPLES / "orders.csv")
    set_status(products_url, "4711", status)
    others = [row for row in stored(products_url) if row[0] != "4711"]
    changed = csv_file(tmp_path,
                       f"4711,BRACKET-A,600,pcs,{START},2026-03-05T22:00:00+01:00,5",
                       "4712,BRACKET-B,300,pcs,2026-03-03T06:00:00+01:00,"
                       "2026-03-05T22:00:00+01:00,1",
                       "4714,BRACKET-B,50,pcs,,,")

    report = run_import(products_url, changed)

    assert (report.created, report.updated, report.unchanged) == (("4714",), ("4711",),
                                                                  ("4712",))
    assert orders(products_url)["4711"] == (
        "BRACKET-A", 600.0, dt.datetime(2026, 3, 2, 6, tzinfo=CET),
        dt.datetime(2026, 3, 5, 22, tzinfo=CET), 5, status)
    assert orders(products_url)["4714"] == ("BRACKET-B", 50.0, None, None, 0, "created")
    assert [row for row in stored(products_url) if row[0] not in ("4711", "4714")] == others
    with engine(products_url).connect() as conn:
        version = conn.execute(text(
            "SELECT version FROM mes.work_order WHERE code = '4711'")).scalar_one()
        assert version == 2
        update = conn.execute(text(
            "SELECT a.actor, a.before->>'quantity', a.after->>'quantity', "
            "a.before->>'priority', a.after->>'priority' FROM mes.audit_log a "
            "JOIN mes.work_order o ON o.id::text = a.record_id "
            "WHERE a.table_name = 'work_order' AND a.action = 'update' "
            "AND a.actor = '4001' AND o.code = '4711'")).one()
    assert tuple(update) == (PLANNER, "500", "600", "2", "5")


@pytest.mark.parametrize("status", ["in_progress", "on_hold", "completed", "closed",
                                    "cancelled"])
def test_a_change_to_a_started_order_refuses_the_whole_file(products_url: str, tmp_path: Path,
                                                             status: str) -> None:
    run_import(products_url, SAMPLES / "orders.csv")
    set_status(products_url, "4712", status)
    before, logged = stored(products_url), audit_count(products_url)
    changed = csv_file(tmp_path,
                       f"4711,BRACKET-A,550,pcs,{START},{DUE},2",
                       "4712,BRACKET-B,350,pcs,2026-03-03T06:00:00+01:00,"
                       "2026-03-05T22:00:00+01:00,1",
                       "4799,BRACKET-A,10,pcs,,,")

    with pytest.raises(OrderFileError) as refused:
        run_import(products_url, changed)

    assert refused.value.problems == [
        f"orders.csv: order 4712: ERP changed it (quantity 300.0 -> 350.0), but it is "
        f"{status.replace('_', ' ')}; only an order not yet started (created or released) "
        "takes changes from ERP (line 3)"]
    assert stored(products_url) == before
    assert "4799" not in orders(products_url)
    assert audit_count(products_url) == logged


def test_a_started_order_sent_again_unchanged_is_fine(products_url: str) -> None:
    run_import(products_url, SAMPLES / "orders.json")
    set_status(products_url, "4711", "in_progress")
    before = stored(products_url)

    report = run_import(products_url, SAMPLES / "orders.json")

    assert report.unchanged == ("4711", "4712", "4713")
    assert stored(products_url) == before


def test_an_order_is_found_by_its_material_too(products_url: str, tmp_path: Path) -> None:
    # The sample products are named like their materials; a product named otherwise is still
    # found by the material ERP knows.
    with engine(products_url).begin() as conn:
        conn.execute(text("UPDATE mes.product_definition SET code = 'BRK-A-ROUTING' "
                          "WHERE code = 'BRACKET-A'"))
    report = run_import(products_url, csv_file(tmp_path, "4711,BRACKET-A,500,pcs,,,"))
    assert report.created == ("4711",)
    assert orders(products_url)["4711"][0] == "BRK-A-ROUTING"


# -- refused files: the whole file, nothing written ------------------------------------------

def xml_order(order_id: str, quantity: str, product: str = "BRACKET-A",
              start: str = START) -> str:
    return f"""  <OperationsRequest>
    <ID>{order_id}</ID>
    <SegmentRequirement>
      <EarliestStartTime>{start}</EarliestStartTime>
      <LatestEndTime>{DUE}</LatestEndTime>
      <MaterialRequirement>
        <MaterialDefinitionID>{product}</MaterialDefinitionID>
        <MaterialUse>Produced</MaterialUse>
        <Quantity><QuantityString>{quantity}</QuantityString></Quantity>
      </MaterialRequirement>
    </SegmentRequirement>
  </OperationsRequest>
"""


def xml_schedule(*requests: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<OperationsSchedule xmlns="http://www.mesa.org/xml/B2MML">\n'
            + "".join(requests) + "</OperationsSchedule>\n")


# Order 4711 changed (500 -> 501): applied on its own, it would be updated.
VALID_CSV = f"4711,BRACKET-A,501,pcs,{START},{DUE},2"
BAD_FILES: dict[str, tuple[str, str, list[str]]] = {
    "malformed xml": ("orders.xml", xml_schedule(xml_order("4711", "500")).replace(
        "</SegmentRequirement>", "</SegmentRequirment>"), [
        "orders.xml: line 13, column 25: not well-formed XML: Opening and ending tag mismatch: "
        "SegmentRequirement line 5 and SegmentRequirment"]),
    "schema-invalid xml": ("orders.xml", xml_schedule(
        xml_order("4711", "500"), xml_order("4712", "20").replace(
            "<Quantity>", "<Amount>").replace("</Quantity>", "</Amount>")), [
        # libxml2 words the rest (what it expected) in its own way.
        "orders.xml: line 23: not valid B2MML: Element 'Amount': This element is not "
        "expected. ..."]),
    "xml date": ("orders.xml", xml_schedule(xml_order("4711", "500", start="2026-03-32")), [
        "orders.xml: line 6: not valid B2MML: Element 'EarliestStartTime': '2026-03-32' is not "
        "a valid value ..."]),
    "xml quantity": ("orders.xml", xml_schedule(xml_order("4711", "500"),
                                                xml_order("4712", "ten")), [
        "orders.xml: order 4712: quantity 'ten' is not a number (line 15)"]),
    "xml unknown product": ("orders.xml", xml_schedule(
        xml_order("4711", "500"), xml_order("4712", "5", product="BRACKET-Z")), [
        "orders.xml: order 4712: unknown product 'BRACKET-Z' (line 15)"]),
    "xml no product": ("orders.xml", xml_schedule(xml_order("4711", "5").replace(
        "Produced", "Consumed")), [
        "orders.xml: order 4711: an order makes one product: give exactly one "
        "MaterialRequirement with MaterialUse 'Produced' (found 0) (line 3)"]),
    "xml not a schedule": ("orders.xml", xml_order("4711", "5").replace(
        "<OperationsRequest>", '<OperationsRequest xmlns="http://www.mesa.org/xml/B2MML">'),
        ["orders.xml: line 1: expected an OperationsSchedule document, found "
         "OperationsRequest"]),
    "xml doctype": ("orders.xml", xml_schedule(xml_order("&secret;", "500")).replace(
        "<OperationsSchedule", '<!DOCTYPE OperationsSchedule [<!ENTITY secret SYSTEM '
        '"file:///etc/hostname">]>\n<OperationsSchedule', 1), [
        "orders.xml: a DOCTYPE declaration is not accepted in an order file (B2MML needs "
        "none)"]),
    "unknown product": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-Z,5,,,,\n", [
        "orders.csv: order 4712: unknown product 'BRACKET-Z' (line 3)"]),
    "non-numeric quantity": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,ten,,,,\n", [
        "orders.csv: order 4712: quantity 'ten' is not a number (line 3)"]),
    "negative quantity": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,-5,,,,\n", [
        "orders.csv: order 4712: quantity '-5' must be more than 0 (line 3)"]),
    "missing order id": ("orders.csv", f"{VALID_CSV}\n,BRACKET-A,5,,,,\n", [
        "orders.csv: line 3: the order id is missing"]),
    "duplicate order id": ("orders.csv", f"{VALID_CSV}\n4711,BRACKET-B,5,,,,\n", [
        "orders.csv: order 4711: appears 2 times (line 2, line 3); an order is given once "
        "per file"]),
    "bad date": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,5,,2026-02-30T06:00:00+01:00,,\n",
                 ["orders.csv: order 4712: earliest_start '2026-02-30T06:00:00+01:00' is not "
                  "a date and time (like 2026-03-02T06:00:00+01:00) (line 3)"]),
    "date without offset": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,5,,,2026-03-05,\n", [
        "orders.csv: order 4712: due '2026-03-05' needs a date, a time and a time zone "
        "offset, like 2026-03-02T06:00:00+01:00 (line 3)"]),
    "due before start": ("orders.csv", f"4711,BRACKET-A,5,,{DUE},{START},\n", [
        "orders.csv: order 4711: due 2026-03-02T06:00:00+01:00 is before earliest_start "
        "2026-03-04T22:00:00+01:00 (line 2)"]),
    "wrong unit": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,5,kg,,,\n", [
        "orders.csv: order 4712: unit 'kg' is not the unit of BRACKET-A ('pcs') (line 3)"]),
    "bad priority": ("orders.csv", f"{VALID_CSV}\n4712,BRACKET-A,5,,,,high\n", [
        "orders.csv: order 4712: priority 'high' is not a whole number from 0 up (line 3)"]),
    "unknown column": ("orders.csv", "order_id,product,qty\n4711,BRACKET-A,5\n", [
        "orders.csv: line 1: unknown column 'qty' (columns: order_id, product, quantity, "
        "unit, earliest_start, due, priority)",
        "orders.csv: line 1: the column 'quantity' is missing"]),
    "empty csv": ("orders.csv", "", ["orders.csv: the file is empty"]),
    "header only": ("orders.csv", CSV_HEADER, ["orders.csv: the file holds no orders"]),
    "empty xml schedule": ("orders.xml", xml_schedule(), ["orders.xml: the file holds no orders"]),
    "empty json": ("orders.json", '{"orders": []}', ["orders.json: the file holds no orders"]),
    "json quantity": ("orders.json", '{"orders": [{"order_id": 4711, "product": "BRACKET-A", '
                      '"quantity": "ten"}]}',
                      ["orders.json: order 4711: quantity 'ten' is not a number (orders[0])"]),
    "json negative": ("orders.json", '{"orders": [{"order_id": "4711", "product": "BRACKET-A",'
                      ' "quantity": -3}]}',
                      ["orders.json: order 4711: quantity -3 must be more than 0 (orders[0])"]),
    "json syntax": ("orders.json", '{"orders": [{"order_id": "4711",}]}', [
        "orders.json: line 1, column 33: JSON syntax: Expecting property name enclosed in "
        "double quotes"]),
    "json field": ("orders.json", '{"orders": [{"order_id": "4711", "product": "BRACKET-A", '
                   '"quantity": 3, "qty": 3}]}', [
        "orders.json: order 4711: unknown field 'qty' (fields: order_id, product, quantity, "
        "unit, earliest_start, due, priority) (orders[0])"]),
    "unknown extension": ("orders.xlsx", "order_id\n4711\n", [
        "orders.xlsx: unknown file type '.xlsx': use .xml (B2MML OperationsSchedule), .csv "
        "or .json"]),
}


@pytest.fixture
def imported_url(products_url: str) -> Iterator[str]:
    """The sample orders imported, so that a refused file can be shown to change nothing."""
    run_import(products_url, SAMPLES / "orders.json")
    yield products_url


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_a_bad_file_is_refused_whole(imported_url: str, tmp_path: Path, case: str) -> None:
    name, content, problems = BAD_FILES[case]
    path = tmp_path / name
    if name.endswith(".csv") and content and not content.startswith("order_id"):
        content = CSV_HEADER + content
    path.write_text(content, encoding="utf-8")
    # Next to their bad orders, the files carry a changed order 4711 (or a new one): had any
    # part of a file been applied, the stored orders would differ.
    before, logged = stored(imported_url), audit_count(imported_url)

    with pytest.raises(OrderFileError) as refused:
        run_import(imported_url, path)

    # A problem ending in "..." is compared up to there.
    assert len(refused.value.problems) == len(problems), refused.value.problems
    for found, expected in zip(refused.value.problems, problems, strict=True):
        if expected.endswith("..."):
            assert found.startswith(expected.removesuffix("...")), found
        else:
            assert found == expected
    assert str(refused.value).startswith(f"{name}: order file refused, nothing was imported:")
    assert stored(imported_url) == before
    assert audit_count(imported_url) == logged


def test_the_sample_xml_is_valid_b2mml() -> None:
    # Read (and so validated against the official schema) without a database.
    assert [o.code for o in read_order_file(SAMPLES / "orders.xml")] == ["4711", "4712", "4713"]


def test_cli_imports_and_refuses(use_database: str, tmp_path: Path,
                                 log_in: Callable[..., None]) -> None:
    with session_factory(use_database)() as session, session.begin():
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
        load_products(session, read_products_file(SAMPLES / "products.toml"))
    runner = CliRunner()
    log_in(PLANNER)

    first = runner.invoke(app, ["erp", "import", str(SAMPLES / "orders.xml")])
    assert first.exit_code == 0, first.output
    assert "3 created, 0 updated, 0 unchanged" in first.output
    assert "created: 4711, 4712, 4713" in first.output

    again = runner.invoke(app, ["erp", "import", str(SAMPLES / "orders.csv")])
    assert again.exit_code == 0, again.output
    assert "0 created, 0 updated, 3 unchanged" in again.output

    bad = csv_file(tmp_path, "4711,BRACKET-A,ten,,,,")
    failed = runner.invoke(app, ["erp", "import", str(bad)])
    assert failed.exit_code == 1
    assert "orders.csv: order 4711: quantity 'ten' is not a number (line 2)" in failed.output
    assert "nothing was imported" in failed.output
    assert "Traceback" not in failed.output
