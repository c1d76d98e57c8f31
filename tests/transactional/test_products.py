"""`mes products load`: the sample products load onto the sample plant, reloads change
nothing, changes are applied by code, and bad files are refused whole with every problem."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from mes.db import engine, session_factory
from tests.conftest import REPO, SAMPLE_PLANT
from transactional.audit import acting
from transactional.models import OperationRun, WorkOrder
from transactional.plant import LoadReport, load_plant
from transactional.plant_file import read_plant_file
from transactional.products import (
    ProductsFileError,
    load_products,
    read_products_file,
)

SAMPLE_PRODUCTS = REPO / "mes" / "samples" / "products.toml"
PRODUCT_TABLES = ("certification", "person_certification", "document", "document_revision",
                  "product_definition", "routing_operation", "bom_item", "inspection_plan")


@pytest.fixture
def plant_url(db_url: str) -> str:
    """A database holding the sample plant (materials, lines, people)."""
    with session_factory(db_url)() as session, session.begin():
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
    return db_url


def load(url: str, path: Path = SAMPLE_PRODUCTS) -> LoadReport:
    products = read_products_file(path)
    with session_factory(url)() as session, session.begin():
        acting(session, "mes-admin")
        return load_products(session, products, source=path.name)


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the product tables with its xmin: a rewritten row shows even if equal."""
    with engine(url).connect() as conn:
        return {table: [tuple(row) for row in conn.execute(text(
            f"SELECT xmin::text, * FROM mes.{table} ORDER BY 2, 3"))] for table in PRODUCT_TABLES}


def edited(tmp_path: Path, *replacements: tuple[str, str], name: str = "products.toml") -> Path:
    content = SAMPLE_PRODUCTS.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in content, old
        content = content.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def routing(url: str, product: str) -> list[tuple[object, ...]]:
    with engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT o.sequence, o.code, o.work_center_type, o.standard_seconds_per_unit, "
            "o.setup_seconds, o.setup_family, out.code, c.code, d.code "
            "FROM mes.routing_operation o "
            "JOIN mes.product_definition p ON p.id = o.product_id "
            "LEFT JOIN mes.material_definition out ON out.id = o.output_material_id "
            "LEFT JOIN mes.certification c ON c.id = o.required_certification_id "
            "LEFT JOIN mes.document d ON d.id = o.document_id "
            "WHERE p.code = :product ORDER BY o.sequence"), {"product": product})]


def test_sample_products_load_with_routing_bom_inspections(plant_url: str) -> None:
    report = load(plant_url)

    assert report.created["product_definition"] == 2
    assert report.created["routing_operation"] == 4
    assert routing(plant_url, "BRACKET-A") == [
        (10, "STAMP", "STAMPING", 2.0, 1200.0, "DIE-A", "BRACKET-RAW", "PRESS-OPERATOR",
         "WI-STAMP"),
        (20, "FINISH", "FINISHING", 3.0, 900.0, "PAINT-GREY", None, None, "WI-PAINT")]
    assert [row[5] for row in routing(plant_url, "BRACKET-B")] == ["DIE-B", "PAINT-BLACK"]
    with engine(plant_url).connect() as conn:
        made = conn.execute(text(
            "SELECT m.code FROM mes.product_definition p "
            "JOIN mes.material_definition m ON m.id = p.material_id "
            "WHERE p.code = 'BRACKET-A'")).scalar_one()
        assert made == "BRACKET-A"
        bom = conn.execute(text(
            "SELECT o.sequence, m.code, b.quantity_per_unit FROM mes.bom_item b "
            "JOIN mes.routing_operation o ON o.id = b.operation_id "
            "JOIN mes.product_definition p ON p.id = o.product_id "
            "JOIN mes.material_definition m ON m.id = b.material_id "
            "WHERE p.code = 'BRACKET-A' ORDER BY o.sequence")).all()
        assert [tuple(row) for row in bom] == [(10, "STEEL-COIL", 0.18),
                                               (20, "BRACKET-RAW", 1.0)]
        plans = conn.execute(text(
            "SELECT o.sequence, i.characteristic, i.nominal, i.lower_spec, i.upper_spec, "
            "i.unit, i.sample_size FROM mes.inspection_plan i "
            "JOIN mes.routing_operation o ON o.id = i.operation_id "
            "JOIN mes.product_definition p ON p.id = o.product_id "
            "WHERE p.code = 'BRACKET-A' ORDER BY o.sequence")).all()
        assert [tuple(row) for row in plans] == [
            (10, "hole diameter", 8.0, 7.9, 8.1, "mm", 2),
            (20, "coating thickness", 60.0, 50.0, 80.0, "µm", 3)]
        revision = conn.execute(text(
            "SELECT r.revision, r.status, r.released_at IS NOT NULL, r.content "
            "FROM mes.document_revision r JOIN mes.document d ON d.id = r.document_id "
            "WHERE d.code = 'WI-STAMP'")).one()
        assert tuple(revision[:3]) == (1, "released", True)
        assert "hole diameter of the first 2 parts" in revision[3]
        held: dict[str, dt.date] = dict(conn.execute(text(
            "SELECT p.badge, pc.valid_until FROM mes.person_certification pc "
            "JOIN mes.person p ON p.id = pc.person_id "
            "JOIN mes.certification c ON c.id = pc.certification_id "
            "WHERE c.code = 'PRESS-OPERATOR'")).all())
        assert held == {"1001": dt.date(2027, 12, 31), "3001": dt.date(2027, 12, 31),
                        "1002": dt.date(2026, 1, 31)}


def test_audited_rows_name_who_loaded_them(plant_url: str) -> None:
    products = read_products_file(SAMPLE_PRODUCTS)
    with session_factory(plant_url)() as session, session.begin():
        acting(session, "9001")  # the administrator, logged in
        load_products(session, products)
    with engine(plant_url).connect() as conn:
        logged = conn.execute(text(
            "SELECT table_name, count(*) FROM mes.audit_log WHERE actor = '9001' "
            "AND action = 'insert' GROUP BY table_name")).all()
    assert dict(logged) == {"document": 2, "document_revision": 2, "person_certification": 3,
                            "inspection_plan": 4}


def test_loading_twice_changes_nothing(plant_url: str) -> None:
    load(plant_url)
    before = snapshot(plant_url)

    again = load(plant_url)

    assert not again.changed, again.summary()
    assert snapshot(plant_url) == before


def test_changed_entries_are_updated_by_code(plant_url: str, tmp_path: Path) -> None:
    load(plant_url)
    with engine(plant_url).connect() as conn:
        ids_before: dict[str, int] = dict(conn.execute(text(
            "SELECT p.code || '/' || o.code, o.id FROM mes.routing_operation o "
            "JOIN mes.product_definition p ON p.id = o.product_id")).all())
    changed = edited(
        tmp_path,
        ('standard_seconds_per_unit = 3.5', 'standard_seconds_per_unit = 4.0'),
        ('valid_until = 2026-01-31', 'valid_until = 2028-01-31'),
        ('title = "Stamping brackets"', 'title = "Stamping brackets on presses"'),
        ('nominal = 60.0, lower_spec = 50.0', 'nominal = 65.0, lower_spec = 55.0'))

    report = load(plant_url, changed)

    assert report.updated == {"routing_operation": 1, "person_certification": 1,
                              "document": 1, "inspection_plan": 1}
    assert not report.created and not report.deleted
    assert routing(plant_url, "BRACKET-B")[1][3] == 4.0
    with engine(plant_url).connect() as conn:
        ids_after: dict[str, int] = dict(conn.execute(text(
            "SELECT p.code || '/' || o.code, o.id FROM mes.routing_operation o "
            "JOIN mes.product_definition p ON p.id = o.product_id")).all())
        assert ids_after == ids_before  # updated in place, not replaced
        until = conn.execute(text(
            "SELECT valid_until FROM mes.person_certification pc "
            "JOIN mes.person p ON p.id = pc.person_id WHERE p.badge = '1002'")).scalar_one()
        assert until == dt.date(2028, 1, 31)
        audit = conn.execute(text(
            "SELECT before->>'valid_until', after->>'valid_until' FROM mes.audit_log "
            "WHERE table_name = 'person_certification' AND action = 'update'")).one()
        assert tuple(audit) == ("2026-01-31", "2028-01-31")


def test_operations_swap_places_and_dropped_details_go(plant_url: str, tmp_path: Path) -> None:
    load(plant_url)
    hole = ('inspections = [\n  { characteristic = "hole diameter", nominal = 8.0, '
            'lower_spec = 7.9, upper_spec = 8.1, unit = "mm", sample_size = 2 },\n]\n')
    # BRACKET-A (the first product): painting first, then stamping, which now makes the
    # product itself and is no longer inspected. Odd, but a legal routing.
    swapped = edited(
        tmp_path,
        ('sequence = 10\ncode = "STAMP"', 'sequence = 20\ncode = "STAMP"'),
        ('sequence = 20\ncode = "FINISH"', 'sequence = 10\ncode = "FINISH"'),
        ('output_material = "BRACKET-RAW"\n', ""),
        (hole, ""))

    report = load(plant_url, swapped)

    assert report.deleted == {"inspection_plan": 1}
    assert [(row[0], row[1]) for row in routing(plant_url, "BRACKET-A")] == [
        (10, "FINISH"), (20, "STAMP")]
    assert [(row[0], row[1]) for row in routing(plant_url, "BRACKET-B")] == [
        (10, "STAMP"), (20, "FINISH")]
    assert not load(plant_url, swapped).changed


def test_every_problem_is_listed_and_nothing_written(plant_url: str, tmp_path: Path) -> None:
    bad = edited(
        tmp_path,
        ('material = "STEEL-COIL", quantity_per_unit = 0.18',
         'material = "STEEL-COYL", quantity_per_unit = 0.18'),
        ('required_certification = "PRESS-OPERATOR"\nwork_instruction = "WI-STAMP"',
         'required_certification = "CRANE-OPERATOR"\nwork_instruction = "WI-STAMPING"'),
        ('work_center_type = "FINISHING"', 'work_center_type = "PAINTING"'),
        ('person = "1002"', 'person = "9999"'))

    with pytest.raises(ProductsFileError) as refused:
        load(plant_url, bad)

    assert refused.value.problems == [
        "person_certifications[2] (9999, PRESS-OPERATOR).person: unknown person (badge) '9999'",
        "products[0] (BRACKET-A).operations[0] (STAMP).required_certification: unknown "
        "certification 'CRANE-OPERATOR'",
        "products[0] (BRACKET-A).operations[0] (STAMP).work_instruction: unknown document "
        "'WI-STAMPING'",
        "products[0] (BRACKET-A).operations[0] (STAMP).bom[0].material: unknown material "
        "'STEEL-COYL'",
        "products[0] (BRACKET-A).operations[1] (FINISH).work_center_type: no line of the plant "
        "has type 'PAINTING' (known: FINISHING, STAMPING)",
    ]
    assert "products.toml: products file rejected, nothing was written" in str(refused.value)
    assert all(rows == [] for rows in snapshot(plant_url).values())


def test_file_problems_are_found_before_the_database(tmp_path: Path) -> None:
    bad = edited(
        tmp_path,
        ('sequence = 20\ncode = "FINISH"', 'sequence = 10\ncode = "FINISH"'),
        ('nominal = 8.0, lower_spec = 7.9', 'nominal = 8.0, lower_spec = 8.05'),
        ('setup_seconds = 900\nsetup_family = "PAINT-GREY"',
         'setup_seconds = -5\nsetup_family = "PAINT-GREY"\ncolour = "grey"'))

    with pytest.raises(ProductsFileError) as refused:
        read_products_file(bad)

    problems = refused.value.problems
    where_a = "products[0] (BRACKET-A).operations"
    assert f"{where_a}[0] (STAMP).inspections[0] (hole diameter): the limits must hold the " \
           "nominal: lower_spec 8.05 <= nominal 8.0 <= upper_spec 8.1" in problems
    assert f"{where_a}[1] (FINISH).setup_seconds: Input should be greater than or equal to 0" \
        in problems
    assert f"{where_a}[1] (FINISH).colour: unknown field (misspelt?)" in problems
    assert len(problems) == 3  # duplicates are looked for once the entries are well-formed

    duplicated = edited(tmp_path, ('sequence = 20\ncode = "FINISH"',
                                   'sequence = 10\ncode = "FINISH"'), name="dup.toml")
    with pytest.raises(ProductsFileError) as refused:
        read_products_file(duplicated)
    assert refused.value.problems == [f"{where_a}: duplicate sequence 10"]


@pytest.mark.parametrize(("content", "problem"), [
    ("[[products]\ncode = 'X'", "TOML syntax: "),
    ("[[products]]\ncode = 'X'\nname = 'X'\nmaterial = 'BRACKET-A'\noperations = []\n",
     "products[0] (X).operations: List should have at least 1 item"),
])
def test_unreadable_files_are_refused(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ProductsFileError) as refused:
        read_products_file(path)
    assert refused.value.problems[0].startswith(problem)


def test_a_routing_ending_in_an_intermediate_is_refused(tmp_path: Path) -> None:
    bad = edited(tmp_path, ('setup_family = "PAINT-GREY"\n',
                            'setup_family = "PAINT-GREY"\noutput_material = "BRACKET-RAW"\n'))
    with pytest.raises(ProductsFileError) as refused:
        read_products_file(bad)
    assert refused.value.problems == [
        "products[0] (BRACKET-A): the last operation (20 FINISH) makes 'BRACKET-RAW', but the "
        "product is 'BRACKET-A'"]


def test_a_work_instruction_is_not_rewritten_by_the_file(plant_url: str,
                                                          tmp_path: Path) -> None:
    load(plant_url)
    before = snapshot(plant_url)
    changed = edited(tmp_path, ("run 5 strokes in inch mode", "run 10 strokes in inch mode"))

    with pytest.raises(ProductsFileError) as refused:
        load(plant_url, changed)

    assert refused.value.problems == [
        "documents[0] (WI-STAMP).text: differs from the document's first revision; a work "
        "instruction is changed through a new revision of the document, not through the "
        "products file"]
    assert snapshot(plant_url) == before


def test_an_operation_with_runs_stays_in_the_routing(plant_url: str, tmp_path: Path) -> None:
    load(plant_url)
    with session_factory(plant_url)() as session, session.begin():
        _run_stamping_of_bracket_a(session)
    before = snapshot(plant_url)
    # BRACKET-A's stamping renamed: the old operation would have to go.
    renamed = edited(tmp_path, ('sequence = 10\ncode = "STAMP"', 'sequence = 10\ncode = "PRESS"'))

    with pytest.raises(ProductsFileError) as refused:
        load(plant_url, renamed)

    assert refused.value.problems == [
        "products (BRACKET-A): operation 'STAMP' has runs recorded against it and cannot be "
        "removed from the routing"]
    assert snapshot(plant_url) == before


def _run_stamping_of_bracket_a(session: Session) -> None:
    acting(session, "3001")
    ids = session.execute(text(
        "SELECT p.id AS product, o.id AS operation, "
        "(SELECT id FROM mes.equipment WHERE code = 'PRESS-1') AS press, "
        "(SELECT id FROM mes.person WHERE badge = '1001') AS operator "
        "FROM mes.product_definition p JOIN mes.routing_operation o ON o.product_id = p.id "
        "WHERE p.code = 'BRACKET-A' AND o.code = 'STAMP'")).one()
    order = WorkOrder(code="4711", product_id=ids.product, quantity=100, status="in_progress")
    session.add(order)
    session.flush()
    session.add(OperationRun(work_order_id=order.id, operation_id=ids.operation,
                             equipment_id=ids.press, operator_id=ids.operator,
                             planned_quantity=100))


def test_cli_loads_and_refuses(use_database: str, tmp_path: Path) -> None:
    with session_factory(use_database)() as session, session.begin():
        acting(session, "mes-admin")
        load_plant(session, read_plant_file(SAMPLE_PLANT))
    runner = CliRunner()

    first = runner.invoke(app, ["products", "load", str(SAMPLE_PRODUCTS)])
    assert first.exit_code == 0, first.output
    assert "loaded" in first.output and "2 product_definition" in first.output

    again = runner.invoke(app, ["products", "load", str(SAMPLE_PRODUCTS)])
    assert again.exit_code == 0, again.output
    assert "already up to date" in again.output

    bad = edited(tmp_path, ('material = "BRACKET-A"\n', 'material = "BRACKET-Z"\n'))
    failed = runner.invoke(app, ["products", "load", str(bad)])
    assert failed.exit_code == 1
    assert "products file rejected, nothing was written" in failed.output
    assert "products[0] (BRACKET-A).material: unknown material 'BRACKET-Z'" in failed.output
    assert "Traceback" not in failed.output
