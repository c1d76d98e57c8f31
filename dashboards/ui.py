"""What every page shows the same way: refusals as messages, tables from records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from transactional.errors import MesError


@contextmanager
def refusals() -> Iterator[None]:
    """Show a refusal of the MES (a plant rule, an unknown code) as a message on the
    screen and stop the page there, instead of a stack trace."""
    try:
        yield
    except MesError as error:
        st.error(str(error))
        st.stop()
