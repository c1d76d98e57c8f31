"""The keys of `mes kpi --json`, in order: a contract with whoever reads the output."""

KPI_JSON_KEYS = ("machine", "shift", "period_start", "period_end", "planned_busy_seconds",
                 "actual_production_seconds", "produced_quantity", "good_quantity",
                 "scrap_quantity", "availability", "performance", "quality", "oee",
                 "mtbf_seconds", "mttr_seconds")
