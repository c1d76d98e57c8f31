"""The SQLAlchemy models and the migrated database describe the same tables."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, Table

from ingest.schema import metadata as timeseries_metadata
from mes.db import engine
from pipelines.tables import metadata as derived_metadata
from transactional.models import Base


def _differences(url: str, metadata: MetaData) -> list[Any]:
    def only_this_schema(name: str | None, type_: str, _parent: Any) -> bool:
        return type_ != "schema" or name == metadata.schema

    def only_this_schemas_tables(obj: Any, _name: str | None, type_: str, _reflected: bool,
                                 _compare_to: Any) -> bool:
        # Tables of other schemas stand in a metadata only as foreign keys' targets.
        return type_ != "table" or obj.schema in (None, metadata.schema)

    with engine(url).connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_schemas": True,
            "include_name": only_this_schema,
            "include_object": only_this_schemas_tables,
            "compare_type": True,
            "compare_server_default": True,
        })
        return list(compare_metadata(context, metadata))


def test_transactional_models_match_the_migrations(db_url: str) -> None:
    assert _differences(db_url, Base.metadata) == []


def test_time_series_tables_match_the_migrations(db_url: str) -> None:
    assert _differences(db_url, timeseries_metadata) == []


def test_a_drifted_model_is_detected(db_url: str) -> None:
    drifted = MetaData(schema="mes")
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    Table("equipment", drifted, Column("serial_number", Integer), extend_existing=True)

    differences = _differences(db_url, drifted)

    assert [d[0] for d in differences] == ["add_column"]
    assert differences[0][3].name == "serial_number"


def test_derived_tables_match_the_migrations(db_url: str) -> None:
    assert _differences(db_url, derived_metadata) == []


def test_a_drifted_derived_table_is_detected(db_url: str) -> None:
    drifted = MetaData(schema="derived")
    for table in derived_metadata.tables.values():
        table.to_metadata(drifted)
    Table("kpi", drifted, Column("teep", Integer), extend_existing=True)

    assert [d[0] for d in _differences(db_url, drifted)] == ["add_column"]
