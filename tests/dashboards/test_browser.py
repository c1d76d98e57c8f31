"""The board in a real browser: `mes dashboards` served against a test database with data
arriving, opened in Debian's chromium through Playwright; a new state row shows up on the
next refresh, no error element appears, and the screenshot goes to the docs."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import psycopg
import pytest

from bench.oee import bench_plant
from dashboards.server import free_port, start, stop, wait_ready
from mes.db import session_factory
from transactional.audit import acting
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import read_plant_file

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "board.png"


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


@pytest.mark.slow
def test_the_board_in_chromium_follows_new_rows_without_an_error(
        db_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (./run installs it)")
    ids = _plant(db_url, tmp_path)
    now = dt.datetime.now(dt.UTC)
    began = now - dt.timedelta(minutes=30)
    _write(db_url, [(began, ids[f"M{i:03d}"], 1, None) for i in range(4)],
           [(began + dt.timedelta(seconds=s), ids[f"M{i:03d}"], 1, 0)
            for i in range(4) for s in range(0, 1800, 2)])
    port = free_port(0)
    server = start(port, env={"MES_DATABASE_URL": db_url})
    try:
        site = f"http://127.0.0.1:{port}"
        wait_ready(server, site)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.goto(site)
                expect(page.get_by_text("Shift board").first).to_be_visible(timeout=60_000)
                expect(page.get_by_text("M002").first).to_be_visible(timeout=60_000)
                assert page.get_by_text("STOPPED").count() == 0

                _write(db_url, [(dt.datetime.now(dt.UTC), ids["M002"], 5, 3)])
                # The board refreshes by itself (every 5 s, data cached 2 s).
                expect(page.get_by_text("STOPPED").first).to_be_visible(timeout=30_000)
                assert page.locator('[data-testid="stException"]').count() == 0
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOT), full_page=True)
            finally:
                browser.close()
    finally:
        stop(server)
    assert server.poll() is not None
