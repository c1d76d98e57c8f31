"""Every page on the demo's data (`mes.demo.first_data`, as `mes demo` makes it): no
exception, and the numbers shown are those the services and the pipelines return for the
same data. The last test serves every read-only page to a login that holds only the
application role's rights."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import streamlit as st
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from dashboards.board import LOOKS, UNKNOWN, percent
from mes.db import engine, session_factory
from mes.settings import get_settings
from pipelines import reports
from pipelines.live import LiveShift, live_shift, top_reasons
from tests.conftest import PASSWORD, AdminConnection, give_password
from tests.dashboards.test_board import board_at
from transactional import genealogy, overview, spc
from transactional.dispatch import dispatch_list
from transactional.exposure import exposed_lots
from transactional.permissions import APPLICATION_ROLE

pytestmark = pytest.mark.slow  # the demo's data takes its collectors' seconds to make

READ_ONLY_PAGES = ("orders", "downtime", "quality", "genealogy", "signals")


def _metrics(app: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in app.metric}


def _days(days: int) -> tuple[dt.datetime, dt.datetime]:
    """The pages' default range (`dashboards.ui.date_range`): the last `days` whole local
    days up to today."""
    zone = ZoneInfo(get_settings().pipeline_timezone)
    today = dt.datetime.now(zone).date()
    return (dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), zone),
            dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), zone))


@pytest.fixture
def services(demo: str) -> Iterator[Session]:
    """A session on the demo's data, for asking the services what the pages should show."""
    with session_factory(demo)() as opened, opened.begin():
        yield opened


def _check_board(app: AppTest, live: LiveShift, services: Session) -> None:
    """The board drawn for `live`: every figure as the live derivation has it, and the
    orders and holds as the services give them."""
    assert not app.exception
    if live.kpis.is_empty():  # outside the sample plant's shifts (nights, weekends)
        assert "No shift" in app.info[0].value
        return
    shown = _metrics(app)
    for row in live.kpis.to_dicts():
        name = row["equipment"]
        for label, column in (("OEE", "oee"), ("A", "availability"), ("P", "performance"),
                              ("Q", "quality")):
            assert shown[f"{name} {label}"] == percent(row[column]), (name, label)
    assert [header.value for header in app.header] == ["Line L1", "Line L2"]
    machines = live.kpis.filter(scope="machine")
    made = [caption.value for caption in app.caption if caption.value.startswith("made ")]
    plant_clock = ZoneInfo(get_settings().pipeline_timezone)  # the sample plant's too
    assert made == [
        f"made {row['produced_quantity']}, good {row['good_quantity']}, scrap "
        f"{row['scrap_quantity']} since {row['period_start'].astimezone(plant_clock):%H:%M}"
        for row in machines.to_dicts()]
    states = {row["machine"]: row["category"] for row in live.machines.to_dicts()}
    tiles = [s.value for s in app.subheader if s.value in states]
    lines = [m.value for m in app.markdown if m.value.startswith("#### ")]
    assert tiles == machines["equipment"].to_list() and len(lines) == len(tiles)
    for machine, line in zip(tiles, lines, strict=True):
        icon, word = LOOKS.get(str(states[machine]), UNKNOWN)
        assert line.startswith(f"#### {icon} {word}"), (machine, line)
    top = app.dataframe[0].value
    expected = top_reasons(live.stops).with_columns(pl.col("minutes").round(1))
    assert list(top["reason"]) == expected["reason"].to_list()
    assert list(top["minutes"]) == expected["minutes"].to_list()
    running = [order for order in overview.order_progress(services) if order.running]
    assert [bar.text for bar in app.progress] == [
        f"{order.code} {order.product}: {order.good_quantity:g} of {order.planned_quantity:g}"
        for order in running] == ["4711 BRACKET-A: 180 of 500"]
    held = overview.held_lots(services)
    assert shown["Lots on hold"] == str(len(held)) == "1"
    assert any(f"**{held[0].code}**" in m.value for m in app.markdown)


def test_the_board_shows_the_demo_shift_as_the_live_derivation_has_it(
        demo_app: AppTest, demo: str, services: Session) -> None:
    moment = dt.datetime.now(dt.UTC)
    app = AppTest.from_function(board_at, args=(moment,), default_timeout=60).run()
    _check_board(app, live_shift(demo, moment), services)

    # The page as served (the default page, the server's LiveBoard, refreshing by itself).
    demo_app.run()
    assert not demo_app.exception and not demo_app.error
    assert demo_app.title[0].value == "Shift board"
    if not live_shift(demo).kpis.is_empty():
        assert [header.value for header in demo_app.header] == ["Line L1", "Line L2"]


def test_the_orders_page_shows_the_demo_orders_and_dispatch_list(
        demo_app: AppTest, services: Session) -> None:
    demo_app.switch_page("app_pages/orders.py").run()

    assert not demo_app.exception and not demo_app.error
    orders = overview.order_progress(services)
    now = dt.datetime.now(dt.UTC)
    assert _metrics(demo_app) == {
        "Orders": str(len(orders)), "Running operations": str(sum(o.running for o in orders)),
        "Late": str(sum(o.late_at(now) for o in orders))}
    shown = demo_app.dataframe[0].value
    assert list(shown["order"]) == [o.code for o in orders] == ["4711", "4712", "4713"]
    assert list(shown["good (last operation)"]) == [o.good_quantity for o in orders]
    assert list(shown["scrap"]) == [o.scrap_quantity for o in orders] == [7, 2, 0]
    assert list(shown["status"]) == ["in_progress", "in_progress", "created"]
    plan = dispatch_list(services, "L1")
    assert list(demo_app.dataframe[1].value["work_order"]) == [e.work_order for e in plan.entries]
    assert list(demo_app.dataframe[2].value["machine"]) == [m.machine for m in plan.machines]


def test_the_downtime_page_shows_the_pipelines_figures_of_the_demo(
        demo_app: AppTest, demo: str) -> None:
    demo_app.switch_page("app_pages/downtime.py").run()

    assert not demo_app.exception and not demo_app.error
    start, end = _days(7)
    pareto = reports.downtime_pareto(demo, start, end)
    unplanned = pareto.filter(~pl.col("planned"))
    metrics = _metrics(demo_app)
    assert metrics["Unplanned stops"] == str(int(unplanned["stops"].sum() or 0))
    assert metrics["Unplanned downtime"] == f"{(unplanned['minutes'].sum() or 0):.0f} min"
    assert list(demo_app.dataframe[0].value["reason"]) == pareto["reason"].to_list()
    over = reports.kpis_over(demo, start, end)
    table = demo_app.dataframe[1].value
    assert list(table["machine"]) == over["equipment"].to_list()
    assert len(table) == 8  # today was derived for every machine of the sample plant
    assert list(table["failure_count"]) == over["failure_count"].to_list()
    assert demo_app.multiselect(key="timeline_machines").value == reports.machines(demo)[:4]


def test_the_quality_page_shows_the_demo_hold_nonconformance_and_chart(
        demo_app: AppTest, services: Session) -> None:
    demo_app.switch_page("app_pages/quality.py").run()

    assert not demo_app.exception and not demo_app.error
    held = overview.held_lots(services)
    lines = overview.nonconformances(services, open_only=True)
    metrics = _metrics(demo_app)
    assert (metrics["Lots on hold or in quarantine"], metrics["Open nonconformances"]) == (
        str(len(held)), str(len(lines))) == ("1", "1")
    assert list(demo_app.dataframe[0].value["lot"]) == [lot.code for lot in held]
    shown = demo_app.dataframe[1].value
    assert list(shown["nonconformance"]) == [line.code for line in lines]
    assert list(shown["measured"]) == [line.measured for line in lines] == [8.16]

    subject = str(demo_app.selectbox(key="spc_subject").value)
    kind, _, name = subject.partition(": ")
    assert (kind, name) == ("inspection", spc.characteristics(services)[0])
    window = _days(7)
    chart = spc.individuals_chart(services, characteristic=name, baseline=window,
                                  judged=window)
    assert metrics["Points"] == str(len(chart.points)) != "0"
    assert chart.capability is not None
    assert metrics["Cpk"] == f"{chart.capability.cpk:.2f}"


def test_the_genealogy_page_traces_a_demo_lot_and_shows_exposure(
        demo_app: AppTest, services: Session) -> None:
    demo_app.switch_page("app_pages/genealogy.py").run()
    demo_app.text_input(key="lot").input("RAW-4711-1").run()

    assert not demo_app.exception and not demo_app.error
    found = genealogy.trace(services, "RAW-4711-1", genealogy.DIRECTIONS)
    metrics = _metrics(demo_app)
    assert metrics["Lots on the trace"] == str(len(found.lots))
    assert metrics["Levels back"] == str(found.depth("backward")) == "1"
    assert set(demo_app.dataframe[0].value["lot"]) == set(found.lots) >= {"COIL-0001",
                                                                          "RAW-4711-1"}
    assert list(demo_app.dataframe[1].value["run"]) == sorted(found.runs)

    signal = str(demo_app.selectbox(key="exposure_signal").value)
    exposure = exposed_lots(services, signal, *_days(7))
    assert metrics["Exposed lots"] == str(len(exposure.made) + len(exposure.downstream))


def test_the_signals_page_draws_what_the_demo_collected(
        demo_app: AppTest, demo: str) -> None:
    demo_app.switch_page("app_pages/signals.py").run()

    assert not demo_app.exception and not demo_app.error
    [signal] = demo_app.multiselect(key="signals").value
    trend, runs = reports.signal_trend(demo, [signal], *_days(1))
    metrics = _metrics(demo_app)
    assert metrics["Samples"] == str(trend["samples"].sum()) != "0"
    assert metrics["Points drawn"] == str(trend.height)
    assert len(demo_app.dataframe[1].value) == runs.height


def test_the_station_serves_an_operator_on_the_demo(
        demo_app: AppTest, demo: str, services: Session) -> None:
    give_password(demo, "1001")
    demo_app.switch_page("app_pages/station.py").run()
    demo_app.text_input(key="badge").input("1001")
    demo_app.text_input(key="secret").input(PASSWORD)
    demo_app.button(key="log_in").click().run()

    assert not demo_app.exception and not demo_app.error
    assert demo_app.success[0].value == "Logged in as Ana Lopez (1001)"
    assert demo_app.selectbox(key="work_center").value == "L1"
    plan = dispatch_list(services, "L1")
    assert list(demo_app.dataframe[0].value["work_order"]) == [e.work_order for e in plan.entries]
    # Order 4713 is not released in the demo: the core refuses, the station says why.
    [stamped] = [run for run in genealogy.trace(services, "RAW-4712-1", ("backward",))
                 .runs.values() if run.work_order == "4712"]
    demo_app.text_input(key="order").input("4713")
    demo_app.text_input(key="operation").input("STAMP")
    demo_app.text_input(key="machine").input(stamped.machine)  # where Ana is signed on
    demo_app.button(key="start").click().run()
    assert [error.value for error in demo_app.error] == [
        "order 4713 is created: runs start only on a released or in-progress order"]
    demo_app.button(key="log_out").click().run()
    assert "operator" not in demo_app.session_state


@pytest.fixture
def floor_login(demo: str, admin: AdminConnection,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A login that is only a member of the application role, as a floor terminal's
    should be (docs/identity.md), and holds no rights until it acts as that role
    (NOINHERIT); the app reads the demo's data through it."""
    role = f"mes_floor_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD {} IN ROLE {}").format(
        sql.Identifier(role), sql.Literal(password), sql.Identifier(APPLICATION_ROLE)))
    url = make_url(demo).set(username=role, password=password).render_as_string(
        hide_password=False)
    monkeypatch.setenv("MES_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        yield url
    finally:
        st.cache_resource.clear()
        engine(url).dispose()
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE usename = %s", (role,))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _pages(app: AppTest, pages: Sequence[str]) -> Iterator[str]:
    for page in pages:
        st.cache_data.clear()
        app.switch_page(f"app_pages/{page}.py").run()
        yield page


def test_the_board_and_read_only_pages_need_only_the_application_roles_rights(
        demo_app: AppTest, demo: str, floor_login: str, services: Session) -> None:
    moment = dt.datetime.now(dt.UTC)
    app = AppTest.from_function(board_at, args=(moment,), default_timeout=60).run()
    # The same figures as the owner's derivation of the same moment.
    _check_board(app, live_shift(demo, moment), services)

    demo_app.run()  # the served board: the server's LiveBoard on its kept connection
    assert not demo_app.exception and not demo_app.error
    for page in _pages(demo_app, READ_ONLY_PAGES):
        assert not demo_app.exception and not demo_app.error, page
    signals = demo_app.metric
    assert signals[0].label == "Samples" and signals[0].value != "0"
