"""Open MES in the browser: the navigation; each page is a file in `app_pages/`."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Open MES", page_icon=":material/factory:", layout="wide")

PAGES = {
    "Shop floor": [
        st.Page("app_pages/board.py", title="Shift board", icon=":material/monitoring:",
                default=True),
        st.Page("app_pages/orders.py", title="Orders", icon=":material/assignment:"),
        st.Page("app_pages/station.py", title="Operator station", icon=":material/badge:"),
    ],
    "Analysis": [
        st.Page("app_pages/downtime.py", title="Downtime", icon=":material/timer_off:"),
        st.Page("app_pages/quality.py", title="Quality", icon=":material/verified:"),
        st.Page("app_pages/genealogy.py", title="Genealogy and recall",
                icon=":material/account_tree:"),
        st.Page("app_pages/signals.py", title="Process signals", icon=":material/show_chart:"),
    ],
}

st.navigation(PAGES).run()
