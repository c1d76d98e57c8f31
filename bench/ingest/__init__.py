"""Benchmarks of the ingest path, run by `mes bench ingest`.

Each measurement runs against the real pieces (the Writer, the collectors, the line
simulator, the local TimescaleDB cluster) in a scratch database, and reports its figure
beside a baseline or target from the same run. Nothing here is used while collecting.
"""

from bench.ingest.report import render
from bench.ingest.scratch import BenchError
from bench.ingest.suite import BenchSizes, run_ingest_bench, sizes_for

__all__ = ["BenchError", "BenchSizes", "render", "run_ingest_bench", "sizes_for"]
