"""The app in a real browser: `mes dashboards` served, opened in Debian's chromium through
Playwright. On a test database with data arriving, a new state row shows up on the board at
its next refresh; in the running demo every page draws without an error element.

Screenshots go to the test's own folder; with MES_UPDATE_DOC_IMAGES=1 the demo's board also
replaces docs/images/board.png (docs/development.md)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

from bench.oee import bench_plant
from dashboards.server import free_port, start, stop, wait_ready
from mes.db import session_factory
from tests.mes.demo_process import demo_process
from transactional.audit import acting
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

if TYPE_CHECKING:
    from playwright.sync_api import Page

DOC_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "board.png"
# Each page of the app (its URL path), its title and the last thing it draws.
PAGES = {"": ("Shift board", "Open holds"), "orders": ("Orders", "Dispatch list"),
         "station": ("Operator station", "Log in"),
         "downtime": ("Downtime", "Classify a stop"),
         "quality": ("Quality", "First pass yield and scrap, per day"),
         "genealogy": ("Genealogy and recall", "Exposed lots"),
         "signals": ("Process signals", "Runs in the range")}


def _plant(url: str, tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "plant.toml"
    path.write_text(bench_plant(4))  # one line, one shift all day (UTC): always running
    with session_factory(url)() as session, session.begin():
        acting(session, ADMINISTRATION)
        load_plant(session, read_plant_file(path))
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT code, id FROM mes.equipment").fetchall())


def _write(url: str, rows: list[tuple[dt.datetime, int, int, int | None]],
           counts: list[tuple[dt.datetime, int, int, int]] = ()) -> None:  # type: ignore[assignment]
    with psycopg.connect(url) as conn:
        conn.cursor().executemany("INSERT INTO ts.equipment_state (ts, equipment_id, state, "
                                  "reason_code) VALUES (%s, %s, %s, %s)", rows)
        if counts:
            conn.cursor().executemany("INSERT INTO ts.production_count (ts, equipment_id, "
                                      "good, reject) VALUES (%s, %s, %s, %s)", counts)


@contextmanager
def _browser() -> Iterator[Page]:
    """A page of Debian's chromium, 1600 x 1000 (a big screen)."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (./run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


@contextmanager
def _served(database_url: str) -> Iterator[tuple[Page, str]]:
    """`mes dashboards`' app served on `database_url`, a browser page and the site's
    address; both stopped at the end."""
    port = free_port(0)
    server = start(port, env={"MES_DATABASE_URL": database_url})
    try:
        site = f"http://127.0.0.1:{port}"
        wait_ready(server, site)
        with _browser() as page:
            yield page, site
    finally:
        stop(server)
    assert server.poll() is not None


@pytest.mark.slow
def test_the_board_in_chromium_follows_new_rows_without_an_error(
        db_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    ids = _plant(db_url, tmp_path)
    now = dt.datetime.now(dt.UTC)
    began = now - dt.timedelta(minutes=30)
    _write(db_url, [(began, ids[f"M{i:03d}"], 1, None) for i in range(4)],
           [(began + dt.timedelta(seconds=s), ids[f"M{i:03d}"], 1, 0)
            for i in range(4) for s in range(0, 1800, 2)])
    with _served(db_url) as (page, site):
        page.goto(site)
        expect(page.get_by_text("Shift board").first).to_be_visible(timeout=60_000)
        expect(page.get_by_text("M002").first).to_be_visible(timeout=60_000)
        assert page.get_by_text("STOPPED").count() == 0

        _write(db_url, [(dt.datetime.now(dt.UTC), ids["M002"], 5, 3)])
        # The board refreshes by itself (every 5 s, data cached 2 s).
        expect(page.get_by_text("STOPPED").first).to_be_visible(timeout=30_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "board.png"), full_page=True)


@pytest.mark.slow
def test_every_page_of_the_running_demo_in_chromium_without_an_error(
        empty_db: str, tmp_path: Path) -> None:
    """`mes demo` as a user runs it, collecting live: every page draws in the browser, the
    board with the sample shift's running order and hold."""
    from playwright.sync_api import expect

    with demo_process(empty_db, tmp_path) as demo, _browser() as page:
        site = demo.serving()
        for path, (title, last) in PAGES.items():
            page.goto(f"{site}/{path}")
            expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(
                timeout=60_000)
            expect(page.get_by_text(last, exact=True).first).to_be_visible(timeout=60_000)
            page.wait_for_timeout(1_000)  # tables and charts draw after the script ends
            assert page.locator('[data-testid="stException"]').count() == 0, title
            page.screenshot(path=str(tmp_path / f"{path or 'board'}.png"))
        # The whole board of the sample plant at once, as on a tall screen.
        page.set_viewport_size({"width": 1600, "height": 2500})
        page.goto(site)
        expect(page.get_by_text("4711 BRACKET-A: 180 of 500")).to_be_visible(timeout=60_000)
        expect(page.get_by_text("RAW-4712-1")).to_be_visible(timeout=60_000)
        page.wait_for_timeout(6_000)  # one refresh of the board, from live data
        assert page.locator('[data-testid="stException"]').count() == 0
        page.screenshot(path=str(tmp_path / "board.png"))
        assert demo.interrupt() == 0
    if os.environ.get("MES_UPDATE_DOC_IMAGES") == "1":
        shutil.copyfile(tmp_path / "board.png", DOC_IMAGE)
