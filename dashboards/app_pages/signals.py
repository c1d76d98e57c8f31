"""Process signals: trends of any signals over any range, averaged per time bucket in the
database (with minimum and maximum), the machine's runs and their lots shaded behind."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data
from dashboards.ui import date_range

st.title("Process signals")

signals = data.signals()
if signals.is_empty():
    st.info("No process signals in the plant.")
    st.stop()
chosen = st.multiselect("Signals", signals["signal"].to_list(),
                        default=signals["signal"].to_list()[:1], key="signals")
start, end = date_range("signals", days=1)
if not chosen:
    st.stop()
trend, runs = data.signal_trend(tuple(chosen), start, end)
left, right = st.columns(2)
left.metric("Samples", int(trend["samples"].sum() or 0))
right.metric("Points drawn", trend.height)
if trend.is_empty():
    st.info("No values of these signals in this range.")
    st.stop()

values = alt.Chart(trend.to_pandas()).encode(x=alt.X("bucket:T", title=None),
                                            color="signal:N")
band = values.mark_area(opacity=0.2).encode(y=alt.Y("low:Q", title=None), y2="high:Q")
line = values.mark_line().encode(y="mean:Q", tooltip=["signal", "bucket:T", "mean:Q",
                                                      "low:Q", "high:Q", "samples:Q"])
layers: list[alt.Chart] = [band, line]
if not runs.is_empty():
    shaded = runs.with_columns(pl.col("started_at").clip(lower_bound=start),
                               pl.col("ended_at").clip(upper_bound=end),
                               pl.col("lots").fill_null(""))
    layers.insert(0, alt.Chart(shaded.to_pandas()).mark_rect(opacity=0.12).encode(
        x="started_at:T", x2="ended_at:T", color=alt.Color("work_order:N", title="order"),
        tooltip=["machine", "run", "work_order", "lots", "started_at:T", "ended_at:T"]))
st.altair_chart(alt.layer(*layers).resolve_scale(color="independent"), width="stretch")
limits = signals.filter(pl.col("signal").is_in(chosen))
st.dataframe(limits, hide_index=True, width="stretch")
st.subheader("Runs in the range")
st.dataframe(runs, hide_index=True, width="stretch")
