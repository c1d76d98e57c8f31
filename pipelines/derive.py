"""Derive one day partition: read, compute, replace. The Dagster assets and `mes derive`
call this; it opens its own ADBC connection and commits once at the end."""

from __future__ import annotations

import datetime as dt

from pipelines import queries
from pipelines.derivation import Derived, derive
from pipelines.reading import (
    DerivationSettings,
    plant_windows,
    read_inputs,
    reconciliation,
    write_partition,
)


def derive_day(url: str, day: dt.date, *, settings: DerivationSettings | None = None,
               now: dt.datetime | None = None) -> Derived:
    settings = settings or DerivationSettings()
    with queries.connect(url) as conn:
        windows = plant_windows(conn, day)
        if windows.is_empty():
            return derive_nothing()
        inputs = read_inputs(conn, windows, now)
        derived = derive(inputs, micro_stop_seconds=settings.micro_stop_seconds)
        write_partition(conn, windows, derived, reconciliation(conn, windows, settings))
    return derived


def derive_nothing() -> Derived:
    import polars as pl

    return Derived(pl.DataFrame(), pl.DataFrame(), pl.DataFrame())
