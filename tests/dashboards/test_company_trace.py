"""The genealogy page on a central store follows a lot across sites, as `mes trace
--company` does; on a site's own database it offers no such section."""

from __future__ import annotations

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from mes.db import psycopg_url, session_factory
from transactional.company_trace import company_trace, render

PAGE = "app_pages/genealogy.py"


@pytest.fixture
def central(use_database: str) -> str:
    """Two sites' lots as the central store holds them once forwarded: at A a coil made into
    MID-1, which A shipped to B; at B MID-1 (from A) made into FIN-1. Each site numbers its
    own lots; a coil code at both sites without a shipment stays two lots."""
    lots = [  # site, id, code, status, quantity, origin, shipped to
        (1, 1, "COIL-1", "consumed", 0.0, None, None),
        (1, 2, "MID-1", "shipped", 0.0, None, "B"),
        (2, 1, "MID-1", "consumed", 0.0, "A", None),
        (2, 2, "FIN-1", "available", 40.0, None, None),
        (2, 3, "COIL-1", "available", 5.0, None, None),
    ]
    with psycopg.connect(psycopg_url(use_database)) as conn:
        conn.execute("INSERT INTO central.site (id, code) VALUES (1, 'A'), (2, 'B')")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO central.material_lot (site_id, id, code, material_id, status,"
                " quantity, location_id, created_at, version, origin_site, shipped_to_site)"
                " VALUES (%s, %s, %s, 1, %s, %s, 1, now(), 1, %s, %s)", lots)
            cursor.executemany(
                "INSERT INTO central.genealogy_link (site_id, id, parent_lot_id, child_lot_id,"
                " kind, quantity) VALUES (%s, %s, %s, %s, 'consume', %s)",
                [(1, 1, 1, 2, 50.0), (2, 1, 1, 2, 50.0)])
    return use_database


def test_the_genealogy_page_follows_a_lot_across_sites(app: AppTest, central: str) -> None:
    app.run()
    app.switch_page(PAGE).run()
    app.text_input(key="company_lot").set_value("FIN-1").run()

    assert not app.exception
    with session_factory(central)() as session:
        expected = render(company_trace(session, "FIN-1"))
    assert app.code[-1].value == expected
    # backward from B's finished lot through the shipment to A's coil, not B's own coil
    assert "site A lot COIL-1 --consume 50--> site A lot MID-1" in expected
    assert "site A lot MID-1 --shipped--> site B lot MID-1" in expected
    shown = app.dataframe[-1].value
    assert sorted(zip(shown["site"], shown["lot"], strict=True)) == [
        ("A", "COIL-1"), ("A", "MID-1"), ("B", "FIN-1"), ("B", "MID-1")]


def test_a_code_at_two_sites_asks_which_one(app: AppTest, central: str) -> None:
    app.run()
    app.switch_page(PAGE).run()
    app.text_input(key="company_lot").set_value("COIL-1").run()
    assert not app.exception
    assert "name one with --site" in app.error[0].value

    app.selectbox(key="company_site").set_value("B").run()
    assert not app.error and "company trace of lot COIL-1 at site B" in app.code[-1].value
    assert "site B lot FIN-1" not in app.code[-1].value   # B's own coil went nowhere


def test_a_site_database_has_no_company_trace(app: AppTest) -> None:
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception
    assert "Across sites" not in [header.value for header in app.header]
