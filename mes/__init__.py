"""Composition root of the MES: settings, database connections and the `mes` command line.

Domain code lives in `transactional`, `ingest`, `pipelines` and `dashboards`; this package
only wires them together.
"""
