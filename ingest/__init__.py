"""Getting what machines say into the time-series hypertables (schema `ts`)."""
