"""Condition monitoring of process values: out of limits for longer than the machine's
threshold, too fast a change, too far from the rolling baseline. Each finding becomes a
`mes.process_event` of kind 'condition' with the run, order and lot of its moment, which
the CMMS's process-limit trigger reads (`transactional.work_requests`).

Judges good samples only; it does not open work requests itself. The caller owns the
transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

from sqlalchemy import RowMapping
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from transactional import cmms_queries as q
from transactional.models import ProcessEvent


@dataclass(frozen=True)
class Sample:
    at: dt.datetime
    value: float


@dataclass(frozen=True)
class Finding:
    rule: str
    at: dt.datetime
    value: float
    detail: str


def out_of_limits(samples: Sequence[Sample], low: float | None, high: float | None,
                  minimum: dt.timedelta, until: dt.datetime) -> Iterator[Finding]:
    """Each stretch out of limits lasting at least `minimum`, at its first sample. A sample
    holds until the next one; a stretch still going on lasts until `until`."""
    def excess(value: float) -> float:
        """How far beyond its limits a value is (negative: within them)."""
        beyond = [value - high] if high is not None else []
        beyond += [low - value] if low is not None else []
        return max(beyond)

    start: Sample | None = None
    worst: Sample | None = None

    def finding(end: dt.datetime) -> Finding | None:
        assert start is not None and worst is not None
        if end - start.at < minimum:
            return None
        side = (f"above the high limit {high:g}" if high is not None and worst.value > high
                else f"below the low limit {low:g}")
        return Finding("limits", start.at, worst.value,
                       f"{side} for {(end - start.at).total_seconds() / 60:.1f} min "
                       f"(worst {worst.value:g})")

    for sample in samples:
        if excess(sample.value) > 0:
            if start is None or worst is None:
                start = worst = sample
            elif excess(sample.value) > excess(worst.value):
                worst = sample
        elif start is not None:
            found = finding(sample.at)
            if found:
                yield found
            start = worst = None
    if start is not None:
        found = finding(until)
        if found:
            yield found


def first_of_stretches(judged: Iterable[Finding | None]) -> Iterator[Finding]:
    """Of consecutive violations (a Finding each; None for a sample judged fine), only the
    first: a rule reports an excursion once, not every sample of it."""
    inside = False
    for finding in judged:
        if finding is not None and not inside:
            yield finding
        inside = finding is not None


def too_fast(samples: Sequence[Sample], max_rate_per_minute: float) -> Iterator[Finding]:
    """A change between two samples faster than the rate, at the later sample; one finding
    per stretch of consecutive too-fast changes."""
    def judge(before: Sample, sample: Sample) -> Finding | None:
        minutes = (sample.at - before.at).total_seconds() / 60
        rate = abs(sample.value - before.value) / minutes if minutes > 0 else 0.0
        if rate <= max_rate_per_minute:
            return None
        return Finding("rate_of_change", sample.at, sample.value,
                       f"changed {sample.value - before.value:+g} in {minutes * 60:g} s "
                       f"({rate:.3g}/min, more than {max_rate_per_minute:g}/min)")

    return first_of_stretches(judge(before, sample) for before, sample in pairwise(samples))


def off_baseline(samples: Sequence[Sample], baseline: dt.timedelta, max_deviation: float,
                 since: dt.datetime) -> Iterator[Finding]:
    """A sample (from `since` on) further than `max_deviation` from the mean of the samples
    of the `baseline` before it; one finding per stretch of such samples. A sample with no
    sample before it in the baseline is not judged."""
    def judged() -> Iterator[Finding | None]:
        window: deque[Sample] = deque()
        total = 0.0
        for sample in samples:
            while window and window[0].at < sample.at - baseline:
                total -= window.popleft().value
            if window and sample.at >= since:
                mean = total / len(window)
                yield (Finding("baseline_deviation", sample.at, sample.value,
                               f"{sample.value - mean:+.3g} from the mean {mean:.4g} of the "
                               f"{baseline.total_seconds() / 60:g} min before (more than "
                               f"{max_deviation:g})")
                       if abs(sample.value - mean) > max_deviation else None)
            window.append(sample)
            total += sample.value

    return first_of_stretches(judged())


def findings(signal: RowMapping, samples: Sequence[Sample], since: dt.datetime,
             until: dt.datetime) -> list[Finding]:
    """What the rules of one signal (a MONITORED_SIGNALS row) find in its samples."""
    found: list[Finding] = []
    judged = [s for s in samples if s.at >= since]
    if signal["out_of_limits_seconds"] is not None and (
            signal["low_limit"] is not None or signal["high_limit"] is not None):
        found += out_of_limits(judged, signal["low_limit"], signal["high_limit"],
                               dt.timedelta(seconds=signal["out_of_limits_seconds"]), until)
    if signal["max_rate_per_minute"] is not None:
        found += too_fast(judged, signal["max_rate_per_minute"])
    if signal["baseline_minutes"] is not None:
        found += off_baseline(samples, dt.timedelta(minutes=signal["baseline_minutes"]),
                              signal["max_deviation"], since)
    return found


def monitor(session: Session, *, since: dt.datetime, until: dt.datetime) -> int:
    """Judge every process value's good samples in [since, until]; store each finding as a
    condition event with its run, order and lot (a finding already stored is not stored
    again). Returns how many are new."""
    new = 0
    for signal in session.execute(q.MONITORED_SIGNALS).mappings().all():
        if (signal["out_of_limits_seconds"] is None and signal["max_rate_per_minute"] is None
                and signal["baseline_minutes"] is None):
            continue
        # The baseline needs the samples before the window; rates need the one before.
        reach = dt.timedelta(minutes=signal["baseline_minutes"] or 0)
        samples = [Sample(r.at, r.value) for r in session.execute(
            q.SAMPLES, {"signal": signal["signal_id"], "since": since - reach,
                        "until": until})]
        for finding in findings(signal, samples, since, until):
            run = session.execute(q.RUN_AT, {"machine": signal["equipment_id"],
                                             "at": finding.at}).mappings().first()
            statement = insert(ProcessEvent).values(
                kind="condition", subject=f"signal:{signal['code']}",
                signal_id=signal["signal_id"], rule=finding.rule, at=finding.at,
                value=finding.value, detail=finding.detail,
                run_id=run["run_id"] if run else None,
                work_order_id=run["work_order_id"] if run else None,
                lot_id=run["lot_id"] if run else None,
            ).on_conflict_do_nothing(constraint="uq_process_event_kind_subject_rule_at"
                                     ).returning(ProcessEvent.id)
            new += len(session.execute(statement).scalars().all())
    return new
