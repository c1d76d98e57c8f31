"""Benchmarks of the transactional side, run by `mes bench trace`.

Each builds its data in a scratch database on the local cluster and reports its figures
beside their targets; nothing here is used while the plant runs.
"""

from bench.trace.trace import TraceBenchError, render_trace_bench, run_trace_bench

__all__ = ["TraceBenchError", "render_trace_bench", "run_trace_bench"]
