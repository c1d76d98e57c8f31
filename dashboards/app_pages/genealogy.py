"""Genealogy and recall: a lot's tree backward and forward with its runs; the lots made
while a process signal was out of its limits; both as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import streamlit as st

from dashboards import data
from dashboards.ui import attempt, date_range
from transactional.company_trace import CompanyTrace
from transactional.company_trace import render as render_company
from transactional.genealogy import Trace, render


def as_csv(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def show_trace(lot: str, found: Trace) -> None:
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
    st.download_button("Download the lots as CSV", as_csv(rows), file_name=f"trace-{lot}.csv",
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


def show_company_trace(found: CompanyTrace) -> None:
    st.code(render_company(found), language=None)
    rows = [{"site": lot.site, "lot": lot.code, "material": lot.material,
             "quantity left": lot.quantity, "unit": lot.unit, "status": lot.status,
             "from site": lot.origin_site, "shipped to site": lot.shipped_to_site}
            for _, lot in sorted(found.lots.items())]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.download_button("Download the company's lots as CSV", as_csv(rows),
                       file_name=f"company-trace-{found.lot[1]}.csv", mime="text/csv")


st.title("Genealogy and recall")

lot = st.text_input("Lot", placeholder="e.g. BOX-1 (type or scan)", key="lot").strip()
if not lot:
    st.info("Type or scan a lot number to see what went into it and where it went.")
else:
    with attempt():
        show_trace(lot, data.trace(lot))

sites = data.central_sites()
if sites:
    st.header("Across sites")
    st.caption("The central store's lots of every site, followed where a lot was shipped "
               "from one site and received at another.")
    company_lot = st.text_input("Lot", placeholder="e.g. MID-1", key="company_lot").strip()
    site = st.selectbox("At site", ["any", *sites], key="company_site")
    if company_lot:
        with attempt():
            show_company_trace(data.company_trace(company_lot, None if site == "any" else site))

st.header("Exposure")
st.caption("Lots made while a process signal was outside its limits, and every lot made "
           "from them since.")
signals = data.signals()
if signals.is_empty():
    st.info("No process signals in the plant.")
    st.stop()
signal = st.selectbox("Signal", signals["signal"].to_list(), key="exposure_signal")
since, until = date_range("exposure", days=7)
with attempt():
    exposure = data.exposure(signal, since, until)
    limits = f"[{exposure.low_limit}, {exposure.high_limit}]"
    st.metric("Exposed lots", len(exposure.made) + len(exposure.downstream))
    st.caption(f"{signal} limits {limits}; {len(exposure.runs)} runs made product outside")
    lots = ([{"lot": made.code, "material": made.material, "status": made.status,
              "finished": made.finished, "made by run": made.run_id, "contains": ""}
             for made in exposure.made]
            + [{"lot": down.code, "material": down.material, "status": down.status,
                "finished": down.finished, "made by run": None,
                "contains": ", ".join(down.contains)} for down in exposure.downstream])
    st.dataframe(lots, hide_index=True, width="stretch")
    st.dataframe([{"run": run.run_id, "order": run.order_id, "operation": run.operation,
                   "machine": run.machine, "operator": run.operator,
                   "started": run.started_at, "ended": run.ended_at,
                   "judged by": run.judged_by} for run in exposure.runs],
                 hide_index=True, width="stretch")
    st.download_button("Download the exposed lots as CSV", as_csv(lots),
                       file_name=f"exposure-{signal}.csv", mime="text/csv",
                       key="exposure_csv")
