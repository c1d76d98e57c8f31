"""The ISO 22400-2 KPI arithmetic, once: ratios from summed base quantities.

`compute_kpis` takes a frame of base quantities (one row per machine, line or site and
period) and adds the ratios. The assets, `mes kpi` and the live board call it; nothing else
computes a ratio. Sums are added before ratios are taken, never ratios averaged.
"""

from __future__ import annotations

import polars as pl

BASE_COLUMNS = ("planned_busy_seconds", "actual_production_seconds", "setup_seconds",
                "unknown_seconds", "produced_quantity", "good_quantity", "scrap_quantity",
                "ideal_production_seconds", "missing_ideal_cycle_time", "failure_count",
                "failure_seconds")
RATIO_COLUMNS = ("availability", "performance", "quality", "oee", "scrap_ratio",
                 "first_pass_yield", "throughput_per_hour", "setup_ratio", "mtbf_seconds",
                 "mttr_seconds")


def compute_kpis(base: pl.DataFrame) -> pl.DataFrame:
    """Add the ratio columns to `base` (see BASE_COLUMNS).

    - availability = actual production time (APT) / planned busy time (PBT)
    - performance = ideal cycle time x produced quantity / APT (`ideal_production_seconds`
      is that sum; null when an ideal cycle time is missing)
    - quality = good / produced; OEE = availability x performance x quality, and 0 when
      planned busy time produced nothing
    - scrap ratio = scrap / produced; first pass yield = good / produced (machines count
      no rework, so it equals quality); throughput = produced per hour of PBT;
      setup ratio = setup time / APT; MTBF = APT / failures; MTTR = failure time / failures
    - without planned busy time every ratio is null: never 0, never NaN.
    """
    pbt = pl.col("planned_busy_seconds")
    apt = pl.col("actual_production_seconds")
    produced = pl.col("produced_quantity")
    failures = pl.col("failure_count")
    ideal = pl.col("ideal_production_seconds")
    planned = pbt > 0
    made = planned & (produced > 0)

    availability = pl.when(planned).then(apt / pbt)
    performance = pl.when(planned & (apt > 0) & ideal.is_not_null()).then(ideal / apt)
    quality = pl.when(made).then(pl.col("good_quantity") / produced)
    ratios = base.with_columns(
        availability.alias("availability"),
        performance.alias("performance"),
        quality.alias("quality"),
    )
    a, p, q = pl.col("availability"), pl.col("performance"), pl.col("quality")
    return ratios.with_columns(
        pl.when(a.is_not_null() & p.is_not_null() & q.is_not_null()).then(a * p * q)
        .when(planned & (produced == 0)).then(pl.lit(0.0))
        .alias("oee"),
        pl.when(made).then(pl.col("scrap_quantity") / produced).alias("scrap_ratio"),
        pl.when(made).then(pl.col("good_quantity") / produced).alias("first_pass_yield"),
        pl.when(planned).then(produced * 3600.0 / pbt).alias("throughput_per_hour"),
        pl.when(planned & (apt > 0)).then(pl.col("setup_seconds") / apt).alias("setup_ratio"),
        pl.when(planned & (failures > 0)).then(apt / failures).alias("mtbf_seconds"),
        pl.when(planned & (failures > 0)).then(pl.col("failure_seconds") / failures)
        .alias("mttr_seconds"),
    ).with_columns(pl.col(name).cast(pl.Float64) for name in RATIO_COLUMNS)


def sum_base(base: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Base quantities added up over `by` (periods into longer ones, machines into lines);
    an unknown ideal time anywhere makes the sum unknown."""
    return base.group_by(by, maintain_order=True).agg(
        *(pl.col(name).sum() for name in BASE_COLUMNS
          if name not in ("ideal_production_seconds", "missing_ideal_cycle_time")),
        pl.when(pl.col("ideal_production_seconds").is_null().any()).then(None)
        .otherwise(pl.col("ideal_production_seconds").sum()).alias("ideal_production_seconds"),
        pl.col("missing_ideal_cycle_time").any(),
    )
