"""`mes bench`: the benchmarks, each figure beside its baseline or target."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from bench.audit import render_audit_bench, run_audit_bench
from bench.exposure import render_exposure_bench, run_exposure_bench
from bench.ingest import render, run_ingest_bench, sizes_for
from bench.sites import render_sites_bench, run_sites_bench
from bench.sites import sizes_for as sites_sizes_for
from bench.trace import render_trace_bench, run_trace_bench
from mes.cli.common import user_errors

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _progress(message: str) -> None:
    typer.echo(message, err=True)


@app.command("ingest")
@user_errors
def bench_ingest(
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
    rows: Annotated[int | None, typer.Option(
        min=1000, help="samples through the writer, a multiple of 1000 (default 3,000,000)",
    )] = None,
    rounds: Annotated[int | None, typer.Option(
        min=1, help="alternating writer / server COPY rounds; the best of each is compared "
             "(default 5)",
    )] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="small sizes: checks that every measurement runs")] = False,
) -> None:
    """Measure the ingest path: writer throughput, latency, capacity, storage, deadband.

    Everything runs in a scratch database on the local cluster, dropped afterwards."""
    results = run_ingest_bench(sizes_for(quick, rows, rounds), _progress)
    typer.echo(json.dumps(results) if as_json else render(results))


@app.command("trace")
@user_errors
def bench_trace(
    lots: Annotated[int, typer.Option(
        "--lots", min=2000, help="lots in the synthetic genealogy")] = 1_000_000,
    traces: Annotated[int, typer.Option(
        min=10, help="traces timed in each direction")] = 500,
    seed: Annotated[int, typer.Option(help="the same seed builds the same genealogy")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Time six-level genealogy traces over a synthetic plant history of LOTS lots.

    Builds it in a scratch database on the local cluster (bulk COPY, audit triggers off for
    the load only), times traces backward from finished lots and forward from raw lots, and
    drops the database."""
    results = run_trace_bench(lots, traces, seed, _progress)
    typer.echo(json.dumps(results) if as_json else render_trace_bench(results))


@app.command("exposure")
@user_errors
def bench_exposure(
    days: Annotated[int, typer.Option(min=1, help="days of 1 Hz samples")] = 30,
    runs: Annotated[int, typer.Option(min=10, help="runs, back to back, each making a lot")
                    ] = 50_000,
    excursions: Annotated[int, typer.Option(
        min=0, help="spells above the high limit, 5-120 s each")] = 200,
    seed: Annotated[int, typer.Option(help="the same seed places the same excursions")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Time "which lots were made while S was out of limits" over a month of 1 Hz samples
    and 50,000 runs, beside a naive join of every sample to the runs.

    Builds the history in a scratch database on the local cluster and drops it."""
    results = run_exposure_bench(days, runs, excursions, seed, _progress)
    typer.echo(json.dumps(results) if as_json else render_exposure_bench(results))


@app.command("oee")
@user_errors
def bench_oee(
    machines: Annotated[int, typer.Option(min=1, help="machines in the synthetic plant")] = 100,
    days: Annotated[int, typer.Option(
        min=1, help="days of history; above 1 also times the backfill per day "
             "(each day is 8.6 M count rows for 100 machines)")] = 1,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Time the derivation of machine time, downtime events and KPIs of MACHINES machines
    (one state change per machine-minute, 1 Hz counts) beside the same KPIs in plain SQL.

    Runs in a scratch database on the local cluster and drops it; both results must agree."""
    from bench.oee import render_oee_bench, run_oee_bench

    results = run_oee_bench(machines, days, _progress)
    typer.echo(json.dumps(results) if as_json else render_oee_bench(results))


@app.command("dashboards")
@user_errors
def bench_dashboards(
    machines: Annotated[int, typer.Option(min=1, help="machines in the synthetic plant")] = 100,
    days: Annotated[int, typer.Option(min=1, help="days of history")] = 30,
    rounds: Annotated[int, typer.Option(min=1, help="timed runs of each (after a warm-up)")]
    = 5,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Time the dashboards' data over DAYS days of MACHINES machines: the board's refresh
    (< 250 ms), the OEE trend, the downtime Pareto and the company page over two sites'
    forwarded KPIs (< 1 s each), beside the targets.

    Runs in a scratch database on the local cluster and drops it."""
    from bench.dashboards import render_dashboards_bench, run_dashboards_bench

    results = run_dashboards_bench(machines, days, rounds, _progress)
    typer.echo(json.dumps(results) if as_json else render_dashboards_bench(results))


@app.command("audit")
@user_errors
def bench_audit(
    seconds: Annotated[float, typer.Option(min=1, help="pgbench time per point")] = 5,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Audited against unaudited transactions/s at 1, 4 and 16 clients, from one run.

    pgbench inserts into two tables of a scratch database, one with the audit trigger,
    while the sealer seals; the database is dropped afterwards."""
    results = run_audit_bench(seconds, _progress)
    typer.echo(json.dumps(results) if as_json else render_audit_bench(results))


@app.command("sites")
@user_errors
def bench_sites(
    signals: Annotated[int | None, typer.Option(
        min=10, help="process values per site at 1 Hz while forwarding (default 2,000)")] = None,
    seconds: Annotated[int | None, typer.Option(
        min=2, help="seconds of steady forwarding for the latency (default 20)")] = None,
    outage_minutes: Annotated[float | None, typer.Option(
        "--outage-minutes", min=0.1, help="the link outage caught up (default 10); its "
        "backlog is written while the forwarders are stopped")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="small sizes: checks that every measurement runs")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Two sites and a central store (three local clusters) and one NATS server: site
    capacity, site -> central latency, catch-up after an outage, central bytes per row.

    Everything runs in a folder under MES_HOME, removed afterwards."""
    results = run_sites_bench(sites_sizes_for(quick, signals, seconds, outage_minutes),
                              _progress)
    typer.echo(json.dumps(results) if as_json else render_sites_bench(results))
