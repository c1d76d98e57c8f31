"""What every page shows the same way: refusals as messages, never a stack trace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy.exc import DBAPIError

from dashboards import operator
from mes.settings import get_settings
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


def logged_in(purpose: str) -> operator.Operator | None:
    """The person logged in at this browser session; otherwise a login form (badge and
    password or PIN, through the identity service) and None."""
    who: operator.Operator | None = st.session_state.get("operator")
    if who is not None:
        return who
    st.caption(f"Log in with your badge and password (or PIN) {purpose}. Every action is "
               "recorded in your name.")
    badge = st.text_input("Badge", key="badge").strip()
    secret = st.text_input("Password or PIN", type="password", key="secret")
    pin = st.toggle("Log in with my PIN", key="pin")
    if st.button("Log in", key="log_in", type="primary"):
        with attempt():
            st.session_state["operator"] = operator.sign_in(badge, secret, pin=pin)
            st.rerun()
    return None


def date_range(key: str, days: int = 7, label: str = "Days") -> tuple[dt.datetime, dt.datetime]:
    """A range of whole local days (the pipelines' time zone) picked on the page, as
    [start, end) instants; the last `days` days up to today unless changed."""
    zone = ZoneInfo(get_settings().pipeline_timezone)
    today = dt.datetime.now(zone).date()
    picked = st.date_input(label, value=(today - dt.timedelta(days=days - 1), today),
                           key=f"{key}_days")
    first, last = (picked if isinstance(picked, tuple) and len(picked) == 2
                   else (today, today))
    return (dt.datetime.combine(first, dt.time(), zone),
            dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone))


THIS_PLANT = "This database's plant"
WHOLE_COMPANY = "Whole company"


def plant_selector(sites: list[str]) -> None:
    """In the sidebar of every page: this database's own plant, one site of the central
    store, or the whole company."""
    st.sidebar.selectbox("Plant", [THIS_PLANT, *sites, WHOLE_COMPANY], key="plant")


def chosen_plant() -> str:
    return str(st.session_state.get("plant", THIS_PLANT))
