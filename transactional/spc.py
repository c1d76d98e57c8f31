"""Statistical process control: individuals / moving range and X-bar / R charts with limits
from a baseline window (never from the data being judged), the Western Electric rules 1-4
and Nelson's trend rule, and capability (Cp, Cpk within; Pp, Ppk overall).

Estimators (stated because the indices depend on them): within-subgroup sigma is MR-bar/d2
(d2 = 1.128 for moving ranges of two) for individuals and R-bar/d2(n) for subgroups of n;
overall sigma is the sample standard deviation (n - 1) of every value. The arithmetic is
plain functions over lists; loading data and recording violations as process events are
the two functions at the end. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from transactional.errors import RuleViolation
from transactional.models import ProcessEvent

# Shewhart constants by subgroup size n (ASTM E2587 / NIST e-Handbook 6.3.2): d2, D3, D4.
D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970,
      10: 3.078}
D3 = {2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223}
D4 = {2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816,
      10: 1.777}
Chart = Literal["individuals", "moving_range", "xbar", "range"]
RULES = {
    "WE1": "one point beyond 3 sigma",
    "WE2": "2 of 3 successive points beyond 2 sigma on the same side",
    "WE3": "4 of 5 successive points beyond 1 sigma on the same side",
    "WE4": "8 successive points on the same side of the center line",
    "N3": "6 points in a row steadily increasing or decreasing (Nelson 3)",
}


@dataclass(frozen=True)
class Limits:
    center: float
    lower: float
    upper: float

    @property
    def sigma(self) -> float:
        """One sigma of the plotted statistic, from the 3-sigma limits."""
        return (self.upper - self.center) / 3


@dataclass(frozen=True)
class Violation:
    rule: str
    index: int  # the point that completes the pattern
    value: float

    @property
    def description(self) -> str:
        return RULES[self.rule]


@dataclass(frozen=True)
class Capability:
    cp: float | None
    cpk: float
    pp: float | None
    ppk: float
    sigma_within: float
    sigma_overall: float
    estimator: str


def moving_ranges(values: Sequence[float]) -> list[float]:
    return [abs(b - a) for a, b in itertools.pairwise(values)]


def individuals_limits(baseline: Sequence[float]) -> tuple[Limits, Limits]:
    """I and MR chart limits from a baseline: x-bar +/- 3 MR-bar/d2; MR up to D4 MR-bar."""
    if len(baseline) < 2:
        raise RuleViolation("an individuals chart needs at least 2 baseline values")
    mean = statistics.fmean(baseline)
    mr_bar = statistics.fmean(moving_ranges(baseline))
    sigma = mr_bar / D2[2]
    return (Limits(mean, mean - 3 * sigma, mean + 3 * sigma),
            Limits(mr_bar, D3[2] * mr_bar, D4[2] * mr_bar))


def xbar_r_limits(baseline: Sequence[Sequence[float]]) -> tuple[Limits, Limits]:
    """X-bar and R chart limits from baseline subgroups of equal size n (2-10):
    grand mean +/- A2 R-bar, where A2 = 3 / (d2 sqrt(n)); R from D3 R-bar to D4 R-bar."""
    sizes = {len(group) for group in baseline}
    if len(sizes) != 1 or not 2 <= (n := sizes.pop()) <= 10:
        raise RuleViolation("X-bar / R needs baseline subgroups of one size from 2 to 10")
    grand = statistics.fmean(statistics.fmean(g) for g in baseline)
    r_bar = statistics.fmean(max(g) - min(g) for g in baseline)
    a2 = 3 / (D2[n] * math.sqrt(n))
    return (Limits(grand, grand - a2 * r_bar, grand + a2 * r_bar),
            Limits(r_bar, D3[n] * r_bar, D4[n] * r_bar))


def western_electric(values: Sequence[float], limits: Limits,
                     trend: bool = True) -> list[Violation]:
    """Each rule's violations, reported at the point completing the pattern (each point at
    most once per rule)."""
    sigma = limits.sigma
    z = [(v - limits.center) / sigma if sigma > 0 else 0.0 for v in values]
    found: list[Violation] = []

    def beyond(window: Sequence[float], k: float, need: int) -> bool:
        return (sum(1 for x in window if x > k) >= need
                or sum(1 for x in window if x < -k) >= need)

    for i, value in enumerate(values):
        if abs(z[i]) > 3:
            found.append(Violation("WE1", i, value))
        if i >= 2 and abs(z[i]) > 2 and beyond(z[i - 2:i + 1], 2, 2):
            found.append(Violation("WE2", i, value))
        if i >= 4 and abs(z[i]) > 1 and beyond(z[i - 4:i + 1], 1, 4):
            found.append(Violation("WE3", i, value))
        if i >= 7 and (all(x > 0 for x in z[i - 7:i + 1]) or all(x < 0 for x in z[i - 7:i + 1])):
            found.append(Violation("WE4", i, value))
        if trend and i >= 5:
            steps = [b - a for a, b in itertools.pairwise(values[i - 5:i + 1])]
            if all(s > 0 for s in steps) or all(s < 0 for s in steps):
                found.append(Violation("N3", i, value))
    return found


def capability(values: Sequence[float], lower: float | None, upper: float | None,
               sigma_within: float) -> Capability:
    """Cp and Cpk from the within-subgroup sigma, Pp and Ppk from the overall one; with
    one spec limit only the one-sided Cpk / Ppk exist (Cp, Pp are None)."""
    if lower is None and upper is None:
        raise RuleViolation("capability needs at least one specification limit")
    mean = statistics.fmean(values)
    overall = statistics.stdev(values)

    def indices(sigma: float) -> tuple[float | None, float]:
        sides = []
        if upper is not None:
            sides.append((upper - mean) / (3 * sigma))
        if lower is not None:
            sides.append((mean - lower) / (3 * sigma))
        spread = (upper - lower) / (6 * sigma) if upper is not None and lower is not None \
            else None
        return spread, min(sides)

    cp, cpk = indices(sigma_within)
    pp, ppk = indices(overall)
    return Capability(cp, cpk, pp, ppk, sigma_within, overall,
                      "within: MR-bar/d2 (individuals) or R-bar/d2 (subgroups); "
                      "overall: sample standard deviation (n - 1)")


# --- data and events ----------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    at: dt.datetime
    value: float
    run_id: int | None = None
    lot_id: int | None = None


CHARACTERISTIC = text("""
SELECT ir.recorded_at AS at, ir.measured AS value, ir.run_id, ir.lot_id, ip.id AS plan_id,
       ip.lower_spec, ip.upper_spec
FROM mes.inspection_result ir
JOIN mes.inspection_plan ip ON ip.id = ir.plan_id
WHERE ip.characteristic = :characteristic AND ir.recorded_at >= :since AND ir.recorded_at < :until
ORDER BY ir.recorded_at, ir.id
""")
SIGNAL = text("""
SELECT v.ts AS at, v.value, s.id AS signal_id, s.low_limit, s.high_limit
FROM ts.process_value v JOIN mes.signal s ON s.id = v.signal_id
WHERE s.code = :signal AND v.ts >= :since AND v.ts < :until AND v.value IS NOT NULL
  AND v.quality NOT IN (SELECT code FROM mes.sample_quality WHERE category = 'bad')
ORDER BY v.ts
""")
RUN_AT = text("""
SELECT r.id, r.work_order_id FROM mes.operation_run r
JOIN mes.signal s ON s.equipment_id = r.equipment_id
WHERE s.id = :signal AND r.started_at <= :at AND coalesce(r.ended_at, 'infinity') > :at
""")


@dataclass(frozen=True)
class Series:
    subject: str
    points: tuple[Point, ...]
    lower_spec: float | None
    upper_spec: float | None
    signal_id: int | None = None
    plan_id: int | None = None


def load_series(session: Session, *, characteristic: str | None = None,
                signal: str | None = None, since: dt.datetime, until: dt.datetime) -> Series:
    """An inspection characteristic's results or a process value's good samples in a
    window, in time order."""
    params = {"since": since, "until": until}
    if characteristic is not None:
        rows = session.execute(CHARACTERISTIC, {**params, "characteristic": characteristic}
                               ).mappings().all()
        first = rows[0] if rows else None
        return Series(f"characteristic:{first['plan_id'] if first else characteristic}",
                      tuple(Point(r["at"], r["value"], r["run_id"], r["lot_id"]) for r in rows),
                      first["lower_spec"] if first else None,
                      first["upper_spec"] if first else None,
                      plan_id=first["plan_id"] if first else None)
    if signal is None:
        raise RuleViolation("name an inspection characteristic or a signal")
    rows = session.execute(SIGNAL, {**params, "signal": signal}).mappings().all()
    first = rows[0] if rows else None
    return Series(f"signal:{signal}", tuple(Point(r["at"], r["value"]) for r in rows),
                  first["low_limit"] if first else None, first["high_limit"] if first else None,
                  signal_id=first["signal_id"] if first else None)


def record_violations(session: Session, series: Series, chart: Chart,
                      violations: Sequence[Violation]) -> int:
    """Store each violation as a process event (kind 'spc') with its run, order and lot;
    the same violation found again is not stored twice. Returns how many are new."""
    new = 0
    for violation in violations:
        point = series.points[violation.index]
        run_id, order_id = point.run_id, None
        if run_id is None and series.signal_id is not None:
            found = session.execute(RUN_AT, {"signal": series.signal_id, "at": point.at}
                                    ).first()
            if found is not None:
                run_id, order_id = found
        statement = insert(ProcessEvent).values(
            kind="spc", subject=series.subject, signal_id=series.signal_id,
            inspection_plan_id=series.plan_id, rule=f"{chart}:{violation.rule}", at=point.at,
            value=violation.value, detail=violation.description, run_id=run_id,
            work_order_id=order_id, lot_id=point.lot_id,
        ).on_conflict_do_nothing(constraint="uq_process_event_kind_subject_rule_at"
                                 ).returning(ProcessEvent.id)
        new += len(session.execute(statement).scalars().all())
    return new


CHARACTERISTICS = text("SELECT DISTINCT characteristic FROM mes.inspection_plan ORDER BY 1")


def characteristics(session: Session) -> list[str]:
    """Every characteristic an inspection plan measures, for choosing a chart."""
    return list(session.scalars(CHARACTERISTICS))


@dataclass(frozen=True)
class ChartView:
    """An individuals chart as a screen draws it: the points judged, the limits from the
    baseline, the rule violations and (with a specification) the capability."""

    subject: str
    baseline_points: int
    points: tuple[Point, ...]
    limits: Limits | None
    violations: tuple[Violation, ...]
    lower_spec: float | None
    upper_spec: float | None
    capability: Capability | None


def individuals_chart(session: Session, *, characteristic: str | None = None,
                      signal: str | None = None, baseline: tuple[dt.datetime, dt.datetime],
                      judged: tuple[dt.datetime, dt.datetime]) -> ChartView:
    """The individuals chart of `mes spc check`: limits from the baseline window, the
    judged window's violations and capability; no limits with fewer than two baseline
    points."""
    base = load_series(session, characteristic=characteristic, signal=signal,
                       since=baseline[0], until=baseline[1])
    series = load_series(session, characteristic=characteristic, signal=signal,
                         since=judged[0], until=judged[1])
    values = [p.value for p in series.points]
    if len(base.points) < 2:
        return ChartView(series.subject, len(base.points), series.points, None, (),
                         series.lower_spec, series.upper_spec, None)
    limits, _ranges = individuals_limits([p.value for p in base.points])
    found = tuple(western_electric(values, limits))
    has_spec = series.lower_spec is not None or series.upper_spec is not None
    cap = (capability(values, series.lower_spec, series.upper_spec, sigma_within=limits.sigma)
           if len(values) >= 2 and has_spec and limits.sigma > 0 else None)
    return ChartView(series.subject, len(base.points), series.points, limits, found,
                     series.lower_spec, series.upper_spec, cap)
