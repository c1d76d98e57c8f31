"""Genealogy and recall: a lot's tree backward and forward, its runs, and a CSV export."""

from __future__ import annotations

import csv
import io

import streamlit as st

from dashboards import data
from dashboards.ui import refusals
from transactional.genealogy import render

st.title("Genealogy and recall")

lot = st.text_input("Lot", placeholder="e.g. BOX-1 (type or scan)").strip()
if not lot:
    st.info("Type or scan a lot number to see what went into it and where it went.")
    st.stop()

with refusals():
    found = data.trace(lot)

backward, forward = (found.depth(direction) for direction in ("backward", "forward"))
left, middle, right = st.columns(3)
left.metric("Lots on the trace", len(found.lots))
middle.metric("Levels back", backward)
right.metric("Levels forward", forward)

st.code(render(found), language=None)

rows = [{"lot": info.code, "material": info.material, "quantity left": info.quantity,
         "quantity in": info.initial_quantity, "unit": info.unit, "status": info.status,
         "location": info.location, "made by run": info.made_by_run}
        for info in found.lots.values()]
st.subheader("Lots")
st.dataframe(rows, hide_index=True, width="stretch")
buffer = io.StringIO()
writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
writer.writeheader()
writer.writerows(rows)
st.download_button("Download the lots as CSV", buffer.getvalue(), file_name=f"trace-{lot}.csv",
                   mime="text/csv")

st.subheader("Runs")
st.dataframe(
    [{"run": run_id, "order": run.work_order, "operation": run.operation,
      "machine": run.machine, "operator": f"{run.operator_badge} {run.operator_name}",
      "started": run.started_at, "ended": run.ended_at,
      "inspections": "; ".join(f"{i.characteristic} #{i.sample_number} {i.measured:g}"
                               + ("" if i.within_spec else " OUT OF SPEC")
                               for i in run.inspections)}
     for run_id, run in sorted(found.runs.items())],
    hide_index=True, width="stretch")
