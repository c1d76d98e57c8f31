"""Orders: planned against actual per work order, lateness, the dispatch list per line."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboards import data
from dashboards.ui import refusals

st.title("Orders")

include_finished = st.toggle("Show finished orders", value=False)
orders = data.order_progress(include_finished)
now = dt.datetime.now(dt.UTC)
late = [order.code for order in orders if order.late_at(now)]

left, middle, right = st.columns(3)
left.metric("Orders", len(orders))
middle.metric("Running operations", sum(order.running for order in orders))
right.metric("Late", len(late))

st.dataframe(
    [{"order": order.code, "product": order.product, "status": order.status,
      "priority": order.priority, "planned": order.planned_quantity,
      "good (last operation)": order.good_quantity, "scrap": order.scrap_quantity,
      "progress": order.progress, "due": order.due_at, "late": order.code in late,
      "runs": order.runs, "running": order.running} for order in orders],
    column_config={"progress": st.column_config.ProgressColumn(
        "progress", min_value=0.0, max_value=1.0, format="percent")},
    hide_index=True, width="stretch")

st.subheader("Dispatch list")
lines = data.work_centers()
if not lines:
    st.info("No work centers: load a plant file (`mes plant load`).")
    st.stop()
line = st.selectbox("Work center", lines)
with refusals():
    plan = data.dispatch(line)
st.caption(f"Planned at {plan.at:%Y-%m-%d %H:%M} ({plan.timezone}); {plan.changeovers} "
           f"changeovers, {plan.changeovers_without_grouping} without grouping by setup family")
st.dataframe([entry.as_json() for entry in plan.entries], hide_index=True, width="stretch")
st.dataframe([machine.as_json() for machine in plan.machines], hide_index=True,
             width="stretch")
