"""Dagster assets by domain: `plant_day` (machine time, downtime, KPIs, count
reconciliation of one day) and `maintenance` (raw data retention)."""
