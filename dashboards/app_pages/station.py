"""The operator station: log in, see the work center's dispatch list, start an operation,
read its work instruction, consume lots, record inspections, report counts, complete."""

from __future__ import annotations

import streamlit as st

from dashboards import data, operator
from dashboards.ui import attempt, logged_in, refusals

st.title("Operator station")

who = logged_in("to work at this station")
if who is None:
    st.stop()

top, out = st.columns([4, 1])
top.success(f"Logged in as {who.name} ({who.badge})")
if out.button("Log out", key="log_out"):
    with attempt():
        operator.sign_out(who)
    for key in ("operator", "run"):
        st.session_state.pop(key, None)
    st.rerun()

lines = data.work_centers()
line = st.selectbox("My work center", lines, key="work_center")
if line:
    with refusals():
        plan = data.dispatch(line)
    st.dataframe([entry.as_json() for entry in plan.entries], hide_index=True,
                 width="stretch")

run_id: int | None = st.session_state.get("run")
if run_id is None:
    st.subheader("Start an operation")
    left, middle, right = st.columns(3)
    order = left.text_input("Order", key="order").strip()
    step = middle.text_input("Operation", key="operation").strip()
    machine = right.text_input("Machine", key="machine").strip()
    if st.button("Start", key="start", type="primary"):
        with attempt():
            st.session_state["run"] = operator.start(who, order, step, machine)
            st.rerun()
    st.stop()

with refusals():
    run = operator.run_view(who, run_id)
st.subheader(f"Run {run.run_id}: {run.status}")
made, scrap, planned = st.columns(3)
made.metric("Good", f"{run.good:g}")
scrap.metric("Scrap", f"{run.scrap:g}")
planned.metric("Planned", f"{run.planned:g}")
if run.instruction is not None:
    with st.expander(f"Work instruction, revision {run.instruction_revision}", expanded=True):
        st.markdown(run.instruction)

st.subheader("Consume material")
lot_column, amount_column = st.columns(2)
lot = lot_column.text_input("Lot (type or scan)", key="consume_lot").strip()
amount = amount_column.number_input("Quantity", min_value=0.0, value=1.0, key="consume_qty")
if st.button("Consume", key="consume"):
    with attempt():
        left_over = operator.consume_lot(who, run.run_id, lot, amount)
        st.success(f"{amount:g} taken from lot {lot}; {left_over:g} left")

st.subheader("Inspections")
if run.missing:
    st.warning("Still to measure: " + ", ".join(
        f"{m.characteristic} ({m.recorded} of {m.needed})" for m in run.missing))
characteristic_column, sample_column, value_column, sample_lot_column = st.columns(4)
characteristic = characteristic_column.text_input(
    "Characteristic", value=run.missing[0].characteristic if run.missing else "",
    key="characteristic").strip()
sample = sample_column.number_input("Sample", min_value=1, value=1, step=1, key="sample")
value = value_column.number_input("Measured", value=0.0, format="%.4f", key="measured")
sample_lot = sample_lot_column.text_input("From lot (optional)", key="sample_lot").strip()
if st.button("Record", key="record"):
    with attempt():
        opened = operator.inspect(who, run.run_id, characteristic, int(sample), value,
                                  sample_lot or None)
        for line_text in opened:
            st.error(f"OUT OF SPEC: {line_text}")
        if not opened:
            st.success(f"{characteristic} sample {sample} = {value:g}, within spec")

st.subheader("Report counts")
good_column, scrap_column = st.columns(2)
good = good_column.number_input("Good", min_value=0.0, value=0.0, key="good")
bad = scrap_column.number_input("Scrap", min_value=0.0, value=0.0, key="scrap")
if st.button("Report", key="report"):
    with attempt():
        operator.report(who, run.run_id, good, bad)
        st.success(f"reported {good:g} good, {bad:g} scrap")

st.subheader("Complete")
output_column, location_column = st.columns(2)
output = output_column.text_input("New lot for the good parts (optional)",
                                  key="output_lot").strip()
location = location_column.text_input("Its location", key="output_location").strip()
if st.button("Complete", key="complete", type="primary"):
    with attempt():
        operator.complete(who, run.run_id, output or None, location or None)
        st.session_state.pop("run", None)
        st.success(f"run {run.run_id} completed")
