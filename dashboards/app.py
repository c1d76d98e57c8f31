"""Open MES in the browser: the navigation; each page is a file in `app_pages/`."""

from __future__ import annotations

import streamlit as st

from dashboards import data
from dashboards.ui import THIS_PLANT, chosen_plant, plant_selector

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

# On a central store (or its replica) the sites' facts can be compared: a plant switch and
# the company page. A site's own database shows neither.
sites = data.central_sites()
if sites:
    plant_selector(sites)
    if chosen_plant() != THIS_PLANT:
        st.sidebar.caption("Sites and company follows this choice; the other pages show "
                           "this database's plant.")
    PAGES["Analysis"].insert(0, st.Page("app_pages/company.py", title="Sites and company",
                                        icon=":material/domain:"))

st.navigation(PAGES).run()
