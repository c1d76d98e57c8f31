"""`mes bench exposure`: "which lots were made while S was out of limits" over a month of
1 Hz samples, beside the same question asked naively."""

from bench.exposure.exposure import ExposureBenchError, render_exposure_bench, run_exposure_bench

__all__ = ["ExposureBenchError", "render_exposure_bench", "run_exposure_bench"]
