"""`mes spc`: control charts and capability for an inspection characteristic or a process
value, limits from a baseline window, violations optionally recorded as process events."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mes.cli.common import fail, moment, transaction, user_errors
from transactional.spc import (
    capability,
    individuals_limits,
    load_series,
    record_violations,
    western_electric,
)

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("check")
@user_errors
def spc_check(
    baseline_from: Annotated[str, typer.Option(help="start of the baseline window")],
    baseline_to: Annotated[str, typer.Option(help="end of the baseline window")],
    since: Annotated[str, typer.Option("--from", help="start of the window judged")],
    until: Annotated[str, typer.Option("--to", help="end of the window judged")],
    characteristic: Annotated[str | None, typer.Option(
        help="an inspection characteristic, e.g. 'hole diameter'")] = None,
    signal: Annotated[str | None, typer.Option(help="a process value's code")] = None,
    record: Annotated[bool, typer.Option(
        "--record", help="store the violations as process events")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """Individuals / moving range chart: limits from the baseline window, the window judged
    by the Western Electric rules 1-4 and Nelson's trend rule, and Cp, Cpk, Pp, Ppk."""
    if (characteristic is None) == (signal is None):
        raise fail("name one of --characteristic or --signal")
    windows = [moment(name, value) for name, value in (
        ("--baseline-from", baseline_from), ("--baseline-to", baseline_to),
        ("--from", since), ("--to", until))]
    b_from, b_to, j_from, j_to = windows
    assert b_from and b_to and j_from and j_to
    with transaction() as session:
        baseline = load_series(session, characteristic=characteristic, signal=signal,
                               since=b_from, until=b_to)
        judged = load_series(session, characteristic=characteristic, signal=signal,
                             since=j_from, until=j_to)
        x_limits, mr_limits = individuals_limits([p.value for p in baseline.points])
        values = [p.value for p in judged.points]
        violations = western_electric(values, x_limits)
        recorded = record_violations(session, judged, "individuals", violations) \
            if record else 0
    result: dict[str, Any] = {
        "subject": judged.subject, "baseline_points": len(baseline.points),
        "points": len(values),
        "individuals": {"center": x_limits.center, "lcl": x_limits.lower,
                        "ucl": x_limits.upper},
        "moving_range": {"center": mr_limits.center, "lcl": mr_limits.lower,
                         "ucl": mr_limits.upper},
        "violations": [{"rule": v.rule, "at": judged.points[v.index].at.isoformat(),
                        "value": v.value, "what": v.description} for v in violations],
        "recorded": recorded,
    }
    if len(values) >= 2 and (judged.lower_spec is not None or judged.upper_spec is not None):
        cap = capability(values, judged.lower_spec, judged.upper_spec,
                         sigma_within=x_limits.sigma)
        result["capability"] = {"Cp": cap.cp, "Cpk": cap.cpk, "Pp": cap.pp, "Ppk": cap.ppk,
                                "estimator": cap.estimator}
    if as_json:
        typer.echo(json.dumps(result, indent=1))
        return
    typer.echo(f"{judged.subject}: {len(values)} points judged against limits from "
               f"{len(baseline.points)} baseline points")
    typer.echo(f"  individuals: center {x_limits.center:.4g}, limits "
               f"[{x_limits.lower:.4g}, {x_limits.upper:.4g}]; moving range: center "
               f"{mr_limits.center:.4g}, upper {mr_limits.upper:.4g}")
    for violation in result["violations"]:
        typer.echo(f"  {violation['rule']} at {violation['at']}: {violation['value']:.4g} "
                   f"({violation['what']})")
    if "capability" in result:
        figures: dict[str, Any] = result["capability"]
        typer.echo("  " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()
                                    if k != "estimator" and v is not None))
        typer.echo(f"  sigma: {figures['estimator']}")
    if record:
        typer.echo(f"  {recorded} new events recorded")
