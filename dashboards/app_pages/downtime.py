"""Downtime: Pareto by reason, each machine's state timeline, MTBF and MTTR; a supervisor
gives an unclassified stop its reason and the numbers follow."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data, operator
from dashboards.ui import attempt, date_range, logged_in

st.title("Downtime")
start, end = date_range("downtime")

pareto = data.downtime_pareto(start, end)
unplanned = pareto.filter(~pl.col("planned"))
left, middle, right = st.columns(3)
left.metric("Unplanned stops", int(unplanned["stops"].sum() or 0))
middle.metric("Unplanned downtime", f"{(unplanned['minutes'].sum() or 0):.0f} min")
right.metric("Unclassified", f"{unplanned.filter(reason='unclassified')['minutes'].sum() or 0:.0f}"
             " min")

st.subheader("Pareto of unplanned stops")
if unplanned.is_empty():
    st.info("No unplanned stops derived in this range (`mes derive` for those days).")
else:
    bars = alt.Chart(unplanned.to_pandas()).mark_bar().encode(
        x=alt.X("reason:N", sort="-y", title="reason"),
        y=alt.Y("minutes:Q", title="minutes"), tooltip=["reason", "stops", "minutes"])
    share = alt.Chart(unplanned.to_pandas()).mark_line(point=True, color="#d62728").encode(
        x=alt.X("reason:N", sort="-y"),
        y=alt.Y("cumulative_share:Q", axis=alt.Axis(format="%"), title="cumulative"))
    st.altair_chart(alt.layer(bars, share).resolve_scale(y="independent"), width="stretch")
st.dataframe(pareto.select("reason", "planned", "stops", pl.col("minutes").round(1)),
             hide_index=True, width="stretch")

st.subheader("MTBF and MTTR per machine")
over = data.kpis_over(start, end)
if over.is_empty():
    st.info("No derived KPIs in this range.")
else:
    st.dataframe(over.select(
        pl.col("equipment").alias("machine"), "failure_count",
        (pl.col("mtbf_seconds") / 60).round(1).alias("MTBF min"),
        (pl.col("mttr_seconds") / 60).round(1).alias("MTTR min"),
        (pl.col("availability") * 100).round(1).alias("A %"),
        (pl.col("oee") * 100).round(1).alias("OEE %")), hide_index=True, width="stretch")

st.subheader("State timeline")
chosen = st.multiselect("Machines", data.machines(), default=data.machines()[:4],
                        key="timeline_machines")
timeline = data.state_timeline(tuple(chosen), start, end)
if not timeline.is_empty():
    st.altair_chart(alt.Chart(timeline.to_pandas()).mark_bar().encode(
        x=alt.X("starts_at:T", title=None), x2="ends_at:T", y=alt.Y("machine:N", title=None),
        color=alt.Color("category:N", scale=alt.Scale(
            domain=["running", "setup", "idle", "planned_stop", "unplanned_stop", "offline",
                    "planned", "unknown"],
            range=["#2ca02c", "#1f77b4", "#ffbf00", "#bbbbbb", "#d62728", "#444444",
                   "#eeeeee", "#f7b6d2"])),
        tooltip=["machine", "category", "reason", "starts_at", "ends_at"]),
        width="stretch")

st.subheader("Classify a stop")
events = data.downtime_events(start, end).filter(
    (pl.col("reason_source") == "unclassified") & ~pl.col("micro_stop"))
if events.is_empty():
    st.success("Every stop in this range has a reason.")
    st.stop()
st.dataframe(events.select("id", "machine", "started_at", "ended_at",
                           (pl.col("duration_seconds") / 60).round(1).alias("minutes"),
                           "category", "work_order"), hide_index=True, width="stretch")
who = logged_in("to classify stops")
if who is None:
    st.stop()
event = st.selectbox("Stop", events["id"].to_list(), key="event",
                     format_func=lambda i: "{} {} {:%Y-%m-%d %H:%M}".format(
                         i, *events.filter(id=i).select("machine", "started_at").row(0)))
reason = st.selectbox("Reason", data.downtime_reasons()["code"].to_list(), key="reason")
note = st.text_input("What happened", key="note")
if st.button("Classify", key="classify", type="primary"):
    with attempt():
        days = operator.classify(who, int(event), reason, note)
        st.cache_data.clear()
        st.success(f"stop {event} classified {reason}; derived again for {', '.join(days)}")
