"""The supervisor board's body: one tile per machine, its line's totals, the order running,
the shift's top stops and the open holds. The page calls `show` in a fragment that reruns
every few seconds; tests call it through AppTest, which does not tick fragments."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboards import data
from mes.settings import get_settings
from pipelines.live import LiveShift, top_reasons

# Machines side by side on a big screen.
TILES_PER_ROW = 3
# What each machine state looks like from across the hall: Streamlit's Material icons (its
# own font, so they draw on a screen without emoji fonts), coloured by urgency.
LOOKS = {"running": (":green[:material/play_circle:]", "running"),
         "setup": (":blue[:material/build_circle:]", "setup"),
         "idle": (":orange[:material/pause_circle:]", "idle"),
         "planned_stop": (":gray[:material/schedule:]", "planned stop"),
         "unplanned_stop": (":red[:material/error:]", "STOPPED"),
         "offline": (":gray[:material/power_settings_new:]", "offline"),
         "planned": (":gray[:material/event_busy:]", "planned")}
UNKNOWN = (":gray[:material/help:]", "no data")


def percent(value: float | None) -> str:
    """A ratio as the board shows it; an unknown one (no planned time) as a dash."""
    return "-" if value is None else f"{value * 100:.1f} %"


def _plant_time(moment: dt.datetime) -> dt.datetime:
    """`moment` on the plant's clock (the pipelines' time zone), whatever the server's."""
    return moment.astimezone(ZoneInfo(get_settings().pipeline_timezone))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _state_line(machine: dict[str, Any]) -> str:
    icon, word = LOOKS.get(str(machine["category"]), UNKNOWN)
    reason = f" · {machine['reason']}" if machine.get("reason") else ""
    seconds = machine["for_seconds"]
    since = duration(float(seconds) if isinstance(seconds, float | int) else None)
    return f"#### {icon} {word}{reason} · for {since}"


def _kpi_tiles(row: dict[str, Any], name: str) -> None:
    st.metric(f"{name} OEE", percent(row["oee"]))
    a, p, q = st.columns(3)
    a.metric(f"{name} A", percent(row["availability"]))
    p.metric(f"{name} P", percent(row["performance"]))
    q.metric(f"{name} Q", percent(row["quality"]))


def _machine_tile(row: dict[str, Any], states: dict[str, dict[str, Any]]) -> None:
    machine = str(row["equipment"])
    st.subheader(machine)
    st.markdown(_state_line(states.get(machine, {"category": "unknown", "for_seconds": None})))
    _kpi_tiles(row, machine)
    st.caption(f"made {row['produced_quantity']}, good {row['good_quantity']}, scrap "
               f"{row['scrap_quantity']} since {_plant_time(row['period_start']):%H:%M}")


def show(live: LiveShift) -> None:
    """Draw the board for `live`, with orders and holds as the services give them now."""
    local = _plant_time(live.now)
    st.caption(f"As of {local:%H:%M:%S}; refreshes every {data.BOARD_REFRESH} s")
    if live.kpis.is_empty():
        st.info("No shift is running now on any machine.")
    states = {row["machine"]: row for row in live.machines.to_dicts()}
    # A database without machines (a central store) has a board without columns.
    lines = () if live.kpis.is_empty() else live.kpis.group_by("line", maintain_order=True)
    for (line,), rows in lines:
        with st.container(border=True):
            total = rows.filter(pl.col("scope") == "line").to_dicts()
            st.header(f"Line {line}")
            if total:
                _kpi_tiles(total[0], str(line))
            tiles = rows.filter(pl.col("scope") == "machine").to_dicts()
            for first in range(0, len(tiles), TILES_PER_ROW):
                for column, row in zip(st.columns(TILES_PER_ROW),
                                       tiles[first:first + TILES_PER_ROW], strict=False):
                    with column.container(border=True):
                        _machine_tile(row, states)
    orders, reasons, holds = st.columns(3)
    with orders:
        st.subheader("Running orders")
        running = [order for order in data.order_progress() if order.running]
        if not running:
            st.write("none")
        for order in running:
            st.progress(min(order.progress, 1.0),
                        text=f"{order.code} {order.product}: {order.good_quantity:g} of "
                             f"{order.planned_quantity:g}")
    with reasons:
        st.subheader("Top stops of the shift")
        top = top_reasons(live.stops)
        st.dataframe(top.with_columns(pl.col("minutes").round(1)), hide_index=True,
                     width="stretch")
    with holds:
        st.subheader("Open holds")
        held = data.held_lots()
        st.metric("Lots on hold", len(held))
        for lot in held:
            st.write(f"**{lot.code}** {lot.material} {lot.quantity:g} {lot.unit} "
                     f"({', '.join(lot.open_nonconformances) or lot.status})")
