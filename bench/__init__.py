"""Benchmarks (`mes bench ...`): each figure measured beside its baseline or target.

Each runs in a scratch database of the project's local cluster (`bench.scratch`), created,
migrated and dropped around the run. Nothing in the MES itself imports this package.
"""
