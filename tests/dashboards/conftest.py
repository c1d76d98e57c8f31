"""The app under AppTest, reading the test's own database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboards.server import APP


@pytest.fixture
def app(use_database: str) -> Iterator[AppTest]:
    """The app, pointed at the test database, with nothing cached from another test."""
    st.cache_data.clear()
    yield AppTest.from_file(str(APP), default_timeout=60)
    st.cache_data.clear()
    st.cache_resource.clear()  # the board's kept connection to this test's database
