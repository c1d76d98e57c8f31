"""`mes bench exposure` at a small size: both queries run and find the same lots."""

from __future__ import annotations

import pytest

from bench.exposure import render_exposure_bench, run_exposure_bench
from mes.localdb import LocalCluster


@pytest.mark.slow
def test_the_exposure_bench_runs_and_both_queries_agree(cluster: LocalCluster) -> None:
    results = run_exposure_bench(days=1, runs=500, excursions=10, seed=1,
                                 progress=lambda _: None)
    assert results["same_lots"] is True
    assert results["exposed"]["lots"] > 0
    assert results["exposed"]["downstream_lots"] > 0
    assert "same lots found by both: yes" in render_exposure_bench(results)
