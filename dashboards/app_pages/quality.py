"""Quality: lots on hold and nonconformances with their dispositions, SPC charts with
limits, rule violations and capability, first pass yield and scrap trends."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data
from dashboards.ui import date_range, refusals

st.title("Quality")

held = data.held_lots()
open_only = st.toggle("Only open nonconformances", value=True)
lines = data.nonconformances(open_only)

left, right = st.columns(2)
left.metric("Lots on hold or in quarantine", len(held))
right.metric("Open nonconformances" if open_only else "Nonconformances", len(lines))

st.subheader("Lots on hold")
st.dataframe(
    [{"lot": lot.code, "material": lot.material, "quantity": lot.quantity, "unit": lot.unit,
      "status": lot.status, "location": lot.location,
      "held by": ", ".join(lot.open_nonconformances)} for lot in held],
    hide_index=True, width="stretch")

st.subheader("Nonconformances")
st.dataframe(
    [{"nonconformance": line.code, "status": line.status, "opened": line.opened_at,
      "characteristic": line.characteristic, "measured": line.measured,
      "spec": f"[{line.lower_spec:g}, {line.upper_spec:g}]", "machine": line.machine,
      "order": line.work_order, "lot": line.lot, "decision": line.decision}
     for line in lines],
    hide_index=True, width="stretch")

st.subheader("SPC: individuals chart")
characteristics = data.characteristics()
signal_codes = data.signals()["signal"].to_list()
subjects = [f"inspection: {c}" for c in characteristics] + [f"signal: {s}" for s in signal_codes]
if not subjects:
    st.info("No inspection plans or process signals yet.")
else:
    subject = st.selectbox("Characteristic or signal", subjects, key="spc_subject")
    judged = date_range("spc", days=7)
    baseline = date_range("spc_baseline", days=7, label="Baseline days (the limits)")
    kind, _, name = subject.partition(": ")
    with refusals():
        chart = data.spc_chart(name if kind == "inspection" else None,
                               name if kind == "signal" else None, baseline, judged)
    cap = chart.capability
    figures = st.columns(5)
    figures[0].metric("Points", len(chart.points))
    for column, label, value in zip(figures[1:], ("Cp", "Cpk", "Pp", "Ppk"),
                                    (cap.cp, cap.cpk, cap.pp, cap.ppk) if cap else
                                    (None,) * 4, strict=True):
        column.metric(label, "-" if value is None else f"{value:.2f}")
    if chart.limits is None:
        st.info(f"{chart.baseline_points} points in the baseline: limits need at least two.")
    elif chart.points:
        flagged = {v.index: v.rule for v in chart.violations}
        points = pl.DataFrame({
            "at": [p.at for p in chart.points], "value": [p.value for p in chart.points],
            "rule": [flagged.get(i, "") for i in range(len(chart.points))]})
        rules = pl.DataFrame({
            "line": ["center", "LCL", "UCL", "LSL", "USL"],
            "y": [chart.limits.center, chart.limits.lower, chart.limits.upper,
                  chart.lower_spec, chart.upper_spec]}).drop_nulls()
        base = alt.Chart(points.to_pandas()).encode(x=alt.X("at:T", title=None))
        st.altair_chart(
            base.mark_line(color="#888").encode(y=alt.Y("value:Q", scale=alt.Scale(
                zero=False)))
            + base.mark_point(filled=True, size=60).encode(
                y="value:Q",
                color=alt.condition(alt.datum.rule != "", alt.value("#d62728"),
                                    alt.value("#1f77b4")),
                tooltip=["at:T", "value:Q", "rule:N"])
            + alt.Chart(rules.to_pandas()).mark_rule(strokeDash=[4, 4]).encode(
                y="y:Q", color=alt.Color("line:N", legend=alt.Legend(title=None))),
            width="stretch")
        st.dataframe([{"rule": v.rule, "at": chart.points[v.index].at, "value": v.value,
                       "what": v.description} for v in chart.violations],
                     hide_index=True, width="stretch")

st.subheader("First pass yield and scrap, per day")
start, end = date_range("quality_trend", days=30)
trend = data.kpi_trend(start, end, scope="site", period="day")
if trend.is_empty():
    st.info("No derived KPIs in this range (`mes derive`).")
else:
    long = trend.select(pl.col("period_start").alias("day"),
                        pl.col("first_pass_yield").alias("first pass yield"),
                        pl.col("scrap_ratio").alias("scrap")).unpivot(
        index="day", variable_name="measure", value_name="share")
    st.altair_chart(alt.Chart(long.to_pandas()).mark_line(point=True).encode(
        x=alt.X("day:T", title=None), y=alt.Y("share:Q", axis=alt.Axis(format="%")),
        color="measure:N", tooltip=["day:T", "measure:N", alt.Tooltip("share:Q", format=".2%")]),
        width="stretch")
