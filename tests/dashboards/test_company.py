"""The plant switch on a central store: every site per day, the company's total from the
sites' base quantities (never their averaged ratios), one site with its lines; and no
switch on a site's own database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from mes.db import psycopg_url
from pipelines import reports
from pipelines.kpi import BASE_COLUMNS, RATIO_COLUMNS, compute_kpis, sum_base
from tests.pipelines import scenario
from tests.pipelines.scenario import Raw, local
from tests.transactional.shop_floor import ShopFloor

DAY = dt.date(2026, 3, 2)
UTC = dt.UTC
# Two sites of different size and time zone. Each site numbers its own equipment, so both
# have an equipment 1 (the site) and 2 (its line).
EAST = {"planned_busy_seconds": 28_800.0, "actual_production_seconds": 25_000.0,
         "produced_quantity": 1_000, "good_quantity": 950, "scrap_quantity": 50,
         "ideal_production_seconds": 20_000.0}
SOUTH = {"planned_busy_seconds": 3_600.0, "actual_production_seconds": 1_800.0,
         "produced_quantity": 100, "good_quantity": 50, "scrap_quantity": 50,
         "ideal_production_seconds": 900.0}
# Midnight at UTC+9 and at UTC-5: the page's day (in the plant's zone) starts between them.
EAST_DAY = dt.datetime.combine(DAY, dt.time(), UTC) - dt.timedelta(hours=9)
SOUTH_DAY = dt.datetime.combine(DAY, dt.time(5), UTC)


def _kpi_row(site_id: int, equipment_id: int, scope: str, starts: dt.datetime,
             base: dict[str, Any]) -> dict[str, Any]:
    row = {name: 0 for name in BASE_COLUMNS} | {"missing_ideal_cycle_time": False} | base
    return {"site_id": site_id, "equipment_id": equipment_id, "scope": scope,
            "period": "day", "period_start": starts,
            "period_end": starts + dt.timedelta(days=1)} | row


def _rows() -> pl.DataFrame:
    return compute_kpis(pl.DataFrame([
        _kpi_row(1, 1, "site", EAST_DAY, EAST), _kpi_row(1, 2, "line", EAST_DAY, EAST),
        _kpi_row(2, 1, "site", SOUTH_DAY, SOUTH), _kpi_row(2, 2, "line", SOUTH_DAY, SOUTH)]))


@pytest.fixture
def central(use_database: str) -> pl.DataFrame:
    """Two sites' facts as the central store holds them once forwarded."""
    rows = _rows()
    columns = ["site_id", "equipment_id", "scope", "period", "period_start", "period_end",
               *BASE_COLUMNS, *RATIO_COLUMNS]
    with psycopg.connect(psycopg_url(use_database)) as conn:
        conn.execute("INSERT INTO central.site (id, code) VALUES (1, 'EAST'), (2, 'SOUTH')")
        conn.execute(
            "INSERT INTO central.equipment (site_id, id, code, name, level, parent_id,"
            " parent_level) VALUES (1, 1, 'EAST', 'East plant', 'site', NULL, NULL),"
            " (1, 2, 'EAST-L1', 'East line 1', 'line', 1, 'site'),"
            " (2, 1, 'SOUTH', 'South plant', 'site', NULL, NULL),"
            " (2, 2, 'SOUTH-L1', 'South line 1', 'line', 1, 'site')")
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO central.kpi ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(row[name] for name in columns) for row in rows.iter_rows(named=True)])
    return rows


def _open(app: AppTest, plant: str, day: dt.date = DAY) -> AppTest:
    app.run()
    app.selectbox(key="plant").set_value(plant).run()
    app.switch_page("app_pages/company.py").run()
    app.date_input(key="company_days").set_value((day, day)).run()
    assert not app.exception
    return app


def test_the_company_total_adds_base_quantities_never_averages_ratios(
        app: AppTest, central: pl.DataFrame) -> None:
    _open(app, "Whole company")

    sites = central.filter(scope="site")
    expected = compute_kpis(sum_base(sites.with_columns(pl.lit(DAY).alias("day")), ["day"]))
    total = app.dataframe[0].value
    assert [day.date() for day in total["day"]] == [DAY]
    for column, label in (("oee", "OEE"), ("availability", "availability"),
                          ("performance", "performance"), ("quality", "quality")):
        assert total[label].iloc[0] == pytest.approx(expected[column][0])
    # By hand from EAST and SOUTH: A = 26,800 / 32,400 s, P = 20,900 / 26,800 s,
    # Q = 1,000 / 1,100 parts.
    assert total["OEE"].iloc[0] == pytest.approx(20_900 / 32_400 * 1_000 / 1_100)
    assert total["availability"].iloc[0] == pytest.approx(26_800 / 32_400)
    # The test data would catch an average: a small, poor site beside a big, good one.
    mean = sites["oee"].mean()
    assert isinstance(mean, float)
    assert abs(total["OEE"].iloc[0] - mean) > 0.1

    per_site = app.dataframe[1].value.set_index("site")
    assert sorted(per_site.index) == ["EAST", "SOUTH"]
    for site_id, site in ((1, "EAST"), (2, "SOUTH")):
        assert per_site.loc[site, "OEE"] == pytest.approx(
            sites.filter(site_id=site_id)["oee"][0])


def test_one_site_shows_only_its_own_figures_and_lines(
        app: AppTest, central: pl.DataFrame) -> None:
    _open(app, "SOUTH")

    assert app.title[0].value == "Site SOUTH"
    assert any("the other pages show this database's plant" in caption.value
               for caption in app.sidebar.caption)
    site, lines = app.dataframe[0].value, app.dataframe[1].value
    assert list(site["equipment"]) == ["SOUTH"]
    assert list(lines["equipment"]) == ["SOUTH-L1"]
    south = central.filter(site_id=2, scope="site").row(0, named=True)
    assert site["OEE"].iloc[0] == pytest.approx(south["oee"]) == pytest.approx(0.125)
    assert site["availability"].iloc[0] == pytest.approx(0.5)


def test_this_database_s_plant_shows_its_own_derived_days(
        app: AppTest, central: pl.DataFrame, floor: ShopFloor, use_database: str) -> None:
    raw = Raw(use_database)
    raw.states("PRESS-1", (local(scenario.DAY, "06:00"), 1, None),
               (local(scenario.DAY, "09:00"), 5, None), (local(scenario.DAY, "09:30"), 1, None))
    raw.counts("PRESS-1", local(scenario.DAY, "06:00"), good=400, every=dt.timedelta(seconds=20))
    raw.derive(scenario.DAY)

    _open(app, "This database's plant", scenario.DAY)

    own = reports.plant_days(use_database, local(scenario.DAY, "00:00"),
                             local(scenario.DAY + dt.timedelta(days=1), "00:00"))
    site = app.dataframe[0].value
    assert list(site["equipment"]) == list(own["equipment"])
    assert "EAST" not in list(site["equipment"])
    assert list(site["OEE"]) == pytest.approx(list(own["oee"]))
    assert own["oee"][0] > 0


def test_a_site_database_has_no_plant_switch(app: AppTest, use_database: str) -> None:
    app.run()

    assert not app.exception
    assert "plant" not in [box.key for box in app.selectbox]
    assert "plant" not in app.session_state
