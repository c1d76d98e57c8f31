"""Sites and company: OEE, availability, performance and quality per day of the plant
chosen in the sidebar: this database's own, one site of the central store with its lines,
or every site with the company's total. Ratios come from the pipelines, never averaged."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from dashboards import data
from dashboards.ui import THIS_PLANT, WHOLE_COMPANY, chosen_plant, date_range

FIGURES = {"oee": "OEE", "availability": "availability", "performance": "performance",
           "quality": "quality"}


def table(rows: pl.DataFrame, by: list[str]) -> None:
    st.dataframe(rows.sort(["day", *by]).select(
        "day", *by, *(pl.col(name).alias(label) for name, label in FIGURES.items())),
        hide_index=True, width="stretch",
        column_config={label: st.column_config.NumberColumn(format="percent")
                       for label in FIGURES.values()})


def oee_chart(rows: pl.DataFrame, colour: str) -> None:
    st.altair_chart(alt.Chart(rows.select("day", colour, "oee").to_pandas())
                    .mark_line(point=True).encode(
        x=alt.X("day:T", title=None), y=alt.Y("oee:Q", title="OEE", axis=alt.Axis(format="%")),
        color=f"{colour}:N", tooltip=["day:T", f"{colour}:N", alt.Tooltip("oee:Q", format=".1%")]),
        width="stretch")


plant = chosen_plant()
st.title(plant if plant in (THIS_PLANT, WHOLE_COMPANY) else f"Site {plant}")
start, end = date_range("company", days=30)

if plant == WHOLE_COMPANY:
    sites, company = data.company_days(start, end)
    if sites.is_empty():
        st.info("No KPIs forwarded by the sites in this range.")
        st.stop()
    st.subheader("Company, per day")
    st.caption("The sites' planned busy time, production time and counts added up, then the "
               "ratios: a big site weighs more than a small one.")
    oee_chart(company.with_columns(pl.lit("company").alias("site")), "site")
    table(company, [])
    st.subheader("Per site, per day")
    oee_chart(sites, "site")
    table(sites, ["site"])
else:
    if plant == THIS_PLANT:
        site_rows = data.plant_days(start, end, "site")
        line_rows = data.plant_days(start, end, "line")
    else:
        site_rows = data.central_days(start, end, "site", plant)
        line_rows = data.central_days(start, end, "line", plant)
    if site_rows.is_empty():
        st.info("No derived KPIs in this range (`mes derive`).")
        st.stop()
    st.subheader("Site, per day")
    oee_chart(site_rows, "equipment")
    table(site_rows, ["equipment"])
    st.subheader("Lines, per day")
    table(line_rows, ["equipment"])
