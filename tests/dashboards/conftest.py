"""The app under AppTest, reading the test's own database or the demo's data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards.server import APP
from mes.demo import first_data
from mes.localdb import LocalCluster
from mes.settings import get_settings
from tests.conftest import AdminConnection, fresh_database

# Seconds of the simulator and both collectors: the demo's first part, shortened.
DEMO_SECONDS = 5.0


@pytest.fixture
def app(use_database: str) -> Iterator[AppTest]:
    """The app, pointed at the test database, with nothing cached from another test."""
    yield from _fresh_app()


def _fresh_app() -> Iterator[AppTest]:
    st.cache_data.clear()
    yield AppTest.from_file(str(APP), default_timeout=60)
    st.cache_data.clear()
    st.cache_resource.clear()  # the board's kept connection to this test's database


@pytest.fixture(scope="session")
def demo_db(cluster: LocalCluster, admin: AdminConnection, template_db: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Owner URL of a database holding the demo's data, made as `mes demo` makes it
    (`mes.demo.first_data`): the sample plant, products, orders and maintenance windows,
    the sample shift's work, DEMO_SECONDS of the simulator and both collectors, today's
    KPIs. Tests read it; those that write leave the others' figures alone."""
    for url in fresh_database(cluster, admin, template_db):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MES_DATABASE_URL", url)
            patch.setenv("MES_COLLECT_DIR", str(tmp_path_factory.mktemp("demo-collect")))
            get_settings.cache_clear()
            try:
                first_data(DEMO_SECONDS, lambda _line: None)
            finally:
                get_settings.cache_clear()
        yield url


@pytest.fixture
def demo(demo_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the app and the `mes` command line at the demo's data."""
    monkeypatch.setenv("MES_DATABASE_URL", demo_db)
    get_settings.cache_clear()
    return demo_db


@pytest.fixture
def demo_app(demo: str) -> Iterator[AppTest]:
    """The app on the demo's data, with nothing cached from another test."""
    yield from _fresh_app()
