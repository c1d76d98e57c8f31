"""What every page shows the same way: refusals as messages, never a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy.exc import DBAPIError

from transactional.errors import MesError


def refusal_message(error: Exception) -> str:
    """What a refusal says to the person at the screen."""
    if isinstance(error, DBAPIError):
        return f"the database refused, nothing was written: {error.orig}"
    return str(error)


@contextmanager
def refusals() -> Iterator[None]:
    """Show a refusal of the MES (a plant rule, an unknown code) as a message on the
    screen and stop the page there, instead of a stack trace."""
    try:
        yield
    except (MesError, DBAPIError) as error:
        st.error(refusal_message(error))
        st.stop()


@contextmanager
def attempt() -> Iterator[None]:
    """Show a refusal of an action as a message and go on drawing the page: the rest of
    the block is skipped, nothing of the action was written (its transaction rolled
    back)."""
    try:
        yield
    except (MesError, DBAPIError) as error:
        st.error(refusal_message(error))
