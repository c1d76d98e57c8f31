"""The Streamlit app: supervisor board, analysts' pages and the operator station.

`dashboards/app.py` is the entry point (`mes dashboards` serves it); each page is a file in
`app_pages/`; `data.py` is the one module pages read through, behind `st.cache_data`.
Pages call the services of `transactional` and `pipelines`; they hold no SQL.
"""
