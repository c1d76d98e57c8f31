"""What the pages read: the services of `transactional` (and `pipelines`), each behind a
short cache so that many screens refreshing together cost the database little.

Every function reads the configured database (`MES_` settings, as the `mes` command uses
them) as the application role, never as the schema owner, and returns plain records that
pickle, as st.cache_data needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
import streamlit as st
from sqlalchemy.orm import Session

from mes.acting import session as application_session
from mes.db import as_role, database_url
from pipelines import reports
from pipelines.live import LiveBoard, LiveShift, live_shift
from transactional import company_trace as company
from transactional import genealogy, overview, spc
from transactional.dispatch import DispatchList, dispatch_list
from transactional.exposure import Exposure, exposed_lots
from transactional.permissions import APPLICATION_ROLE

# Seconds a result may be reused: screens refresh every few seconds, and orders, holds and
# nonconformances change at human speed. The board refreshes every BOARD_REFRESH seconds
# and reuses a derivation for LIVE seconds, so that many screens cost one.
SHORT = 5
LONG = 60
LIVE = 2
BOARD_REFRESH = 5


def _reader_url() -> str:
    """The pipelines' readers (ADBC, outside the ORM) connect as the application role too."""
    return as_role(database_url(), APPLICATION_ROLE)


@contextmanager
def _reading() -> Iterator[Session]:
    # As the application role, like every command that is not administration.
    with application_session() as session, session.begin():
        yield session


@st.cache_data(ttl=SHORT, show_spinner=False)
def order_progress(include_finished: bool = False) -> list[overview.OrderProgress]:
    with _reading() as session:
        return overview.order_progress(session, include_finished=include_finished)


@st.cache_data(ttl=LONG, show_spinner=False)
def work_centers() -> list[str]:
    with _reading() as session:
        return overview.work_centers(session)


@st.cache_data(ttl=SHORT, show_spinner=False)
def dispatch(work_center: str, at: dt.datetime | None = None) -> DispatchList:
    """What to run next on a line's machines (`mes dispatch`)."""
    with _reading() as session:
        return dispatch_list(session, work_center, at)


@st.cache_data(ttl=SHORT, show_spinner=False)
def held_lots() -> list[overview.HeldLot]:
    with _reading() as session:
        return overview.held_lots(session)


@st.cache_data(ttl=SHORT, show_spinner=False)
def nonconformances(open_only: bool) -> list[overview.NonconformanceLine]:
    with _reading() as session:
        return overview.nonconformances(session, open_only=open_only)


@st.cache_data(ttl=SHORT, show_spinner=False)
def trace(lot_code: str) -> genealogy.Trace:
    """A lot's genealogy both ways (`mes trace`)."""
    with _reading() as session:
        return genealogy.trace(session, lot_code, genealogy.DIRECTIONS)


@st.cache_data(ttl=SHORT, show_spinner=False)
def company_trace(lot_code: str, site: str | None) -> company.CompanyTrace:
    """A lot's genealogy across the sites of the central store (`mes trace --company`)."""
    with _reading() as session:
        return company.company_trace(session, lot_code, site)


@st.cache_resource(show_spinner=False)
def _board(url: str) -> LiveBoard:
    """One per server process and database: its connection and kept counts serve every
    screen showing the board."""
    return LiveBoard(url)


@st.cache_data(ttl=LIVE, show_spinner=False)
def live(now: dt.datetime | None = None) -> LiveShift:
    """The running shift so far, derived from the hypertables (`pipelines.live`); a fixed
    `now` (tests, history) is read afresh."""
    if now is not None:
        return live_shift(_reader_url(), now)
    return _board(_reader_url()).shift()


@st.cache_data(ttl=SHORT, show_spinner=False)
def downtime_pareto(start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    return reports.downtime_pareto(_reader_url(), start, end)


@st.cache_data(ttl=SHORT, show_spinner=False)
def state_timeline(machines: tuple[str, ...], start: dt.datetime,
                   end: dt.datetime) -> pl.DataFrame:
    frames = [reports.state_timeline(_reader_url(), machine, start, end)
              for machine in machines]
    return pl.concat(frames) if frames else pl.DataFrame()


@st.cache_data(ttl=SHORT, show_spinner=False)
def kpis_over(start: dt.datetime, end: dt.datetime, scope: str = "machine") -> pl.DataFrame:
    return reports.kpis_over(_reader_url(), start, end, scope=scope)


@st.cache_data(ttl=SHORT, show_spinner=False)
def kpi_trend(start: dt.datetime, end: dt.datetime, scope: str = "site",
              period: str = "day") -> pl.DataFrame:
    return reports.kpi_trend(_reader_url(), start, end, scope=scope, period=period)


@st.cache_data(ttl=LONG, show_spinner=False)
def central_sites() -> list[str]:
    """The sites of the central store this database is (none on a site's own database)."""
    return reports.central_sites(_reader_url())


@st.cache_data(ttl=SHORT, show_spinner=False)
def plant_days(start: dt.datetime, end: dt.datetime, scope: str = "site") -> pl.DataFrame:
    return reports.plant_days(_reader_url(), start, end, scope=scope)


@st.cache_data(ttl=SHORT, show_spinner=False)
def central_days(start: dt.datetime, end: dt.datetime, scope: str = "site",
                 site: str | None = None) -> pl.DataFrame:
    return reports.central_days(_reader_url(), start, end, scope=scope, site=site)


@st.cache_data(ttl=SHORT, show_spinner=False)
def company_days(start: dt.datetime, end: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every site per day, and the company's total per day from their base quantities."""
    sites = reports.central_days(_reader_url(), start, end)
    return sites, reports.company_days(sites)


@st.cache_data(ttl=SHORT, show_spinner=False)
def downtime_events(start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    return reports.downtime_events(_reader_url(), start, end)


@st.cache_data(ttl=LONG, show_spinner=False)
def downtime_reasons() -> pl.DataFrame:
    return reports.downtime_reasons(_reader_url())


@st.cache_data(ttl=LONG, show_spinner=False)
def machines() -> list[str]:
    return reports.machines(_reader_url())


@st.cache_data(ttl=LONG, show_spinner=False)
def signals() -> pl.DataFrame:
    return reports.signals(_reader_url())


@st.cache_data(ttl=SHORT, show_spinner=False)
def signal_trend(codes: tuple[str, ...], start: dt.datetime,
                 end: dt.datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    return reports.signal_trend(_reader_url(), list(codes), start, end)


@st.cache_data(ttl=LONG, show_spinner=False)
def characteristics() -> list[str]:
    with _reading() as session:
        return spc.characteristics(session)


@st.cache_data(ttl=SHORT, show_spinner=False)
def spc_chart(characteristic: str | None, signal: str | None,
              baseline: tuple[dt.datetime, dt.datetime],
              judged: tuple[dt.datetime, dt.datetime]) -> spc.ChartView:
    """An individuals chart with limits from `baseline` (`mes spc check`)."""
    with _reading() as session:
        return spc.individuals_chart(session, characteristic=characteristic, signal=signal,
                                     baseline=baseline, judged=judged)


@st.cache_data(ttl=SHORT, show_spinner=False)
def exposure(signal: str, since: dt.datetime | None,
             until: dt.datetime | None) -> Exposure:
    """Lots made while `signal` was out of its limits, and what was made of them."""
    with _reading() as session:
        return exposed_lots(session, signal, since, until)
