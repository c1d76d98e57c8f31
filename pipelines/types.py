"""Frames shaped exactly like a derived table before bulk ingest (column order and types),
since ADBC's COPY maps Arrow types one to one onto the table's."""

from __future__ import annotations

import polars as pl
from sqlalchemy import BigInteger, Boolean, Double, Integer, Table, Text
from sqlalchemy.dialects.postgresql import TIMESTAMP

# BigInteger before Integer: it is a subclass.
_POLARS: dict[type, pl.DataType] = {BigInteger: pl.Int64(), Integer: pl.Int32(),
                                    Double: pl.Float64(), Boolean: pl.Boolean(),
                                    Text: pl.String()}


def polars_type(column_type: object) -> pl.DataType:
    if isinstance(column_type, TIMESTAMP):
        return pl.Datetime("us", "UTC")
    for sql_type, dtype in _POLARS.items():
        if isinstance(column_type, sql_type):
            return dtype
    raise TypeError(f"no Polars type for {column_type!r}")


def conform(frame: pl.DataFrame, table: Table, skip: tuple[str, ...] = ()) -> pl.DataFrame:
    return frame.select(pl.col(c.name).cast(polars_type(c.type))
                        for c in table.columns if c.name not in skip)
