"""Quality: lots on hold and nonconformances with their dispositions."""

from __future__ import annotations

import streamlit as st

from dashboards import data

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
