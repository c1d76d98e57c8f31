"""SPC statistics against the NIST/SEMATECH e-Handbook of Statistical Methods and hand
computations; each Western Electric rule triggered and not triggered; violations stored
once as process events; `mes spc check`."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from mes.cli import app
from tests.transactional.test_exposure import SIGNAL, at
from tests.transactional.test_lots import setup_plant
from transactional.audit import acting
from transactional.errors import RuleViolation
from transactional.models import ProcessEvent, Signal
from transactional.spc import (
    Limits,
    capability,
    individuals_limits,
    load_series,
    moving_ranges,
    record_violations,
    western_electric,
    xbar_r_limits,
)

# NIST/SEMATECH e-Handbook of Statistical Methods, section 6.3.2.2 "Individuals Control
# Charts", example: flow rate of the first 10 batches of a new process.
NIST_FLOW = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]


def test_individuals_limits_match_the_nist_handbook_example() -> None:
    x, mr = individuals_limits(NIST_FLOW)
    assert moving_ranges(NIST_FLOW)[:3] == pytest.approx([2.0, 2.3, 1.4])
    assert x.center == pytest.approx(50.81)
    assert mr.center == pytest.approx(1.8778, abs=1e-4)
    # The handbook: UCL 55.80, LCL 45.82 for x; UCL 6.13, LCL 0 for the moving range.
    assert (round(x.upper, 2), round(x.lower, 2)) == (55.80, 45.82)
    assert (round(mr.upper, 2), mr.lower) == (6.13, 0.0)


def test_capability_matches_the_nist_handbook_example() -> None:
    # e-Handbook 6.1.6 "What is Process Capability?": USL 20, LSL 8, mean 16, sigma 2
    # gives Cp = 1.0 and Cpk = min((20-16)/6, (16-8)/6) = 0.6667.
    values = [14.0, 18.0]  # mean 16, sample standard deviation 2.828...
    result = capability(values, 8, 20, sigma_within=2.0)
    assert result.cp == pytest.approx(1.0)
    assert result.cpk == pytest.approx(0.6667, abs=1e-4)
    # By hand, overall sigma = sqrt(((14-16)^2 + (18-16)^2) / 1) = 2.8284.
    assert result.sigma_overall == pytest.approx(2.8284, abs=1e-4)
    assert result.pp == pytest.approx(12 / (6 * 2.8284), abs=1e-4)
    assert result.ppk == pytest.approx(4 / (3 * 2.8284), abs=1e-4)
    one_sided = capability(values, None, 20, sigma_within=2.0)
    assert one_sided.cp is None and one_sided.cpk == pytest.approx(0.6667, abs=1e-4)


def test_xbar_r_limits_by_hand() -> None:
    # Subgroups of 5: means 10, 11, 12 -> grand mean 11; ranges 2, 4, 3 -> R-bar 3;
    # A2 = 3 / (2.326 sqrt 5) = 0.5768; D4 = 2.114, D3 = 0.
    groups = [[9, 10, 10, 10, 11], [9, 11, 11, 11, 13], [10, 12, 12, 13, 13]]
    xbar, r = xbar_r_limits(groups)
    assert xbar.center == pytest.approx(11)
    assert xbar.upper == pytest.approx(11 + 0.5768 * 3, abs=1e-3)
    assert xbar.lower == pytest.approx(11 - 0.5768 * 3, abs=1e-3)
    assert (r.center, r.lower, r.upper) == pytest.approx((3, 0, 2.114 * 3))
    with pytest.raises(RuleViolation, match="one size"):
        xbar_r_limits([[1, 2], [1, 2, 3]])


LIMITS = Limits(center=0, lower=-3, upper=3)  # sigma 1


@pytest.mark.parametrize(("rule", "values", "fires_at"), [
    ("WE1", [0, 0.5, 3.2], [2]),
    ("WE1", [0, 2.9, -2.9], []),
    ("WE2", [2.5, 0, 2.1], [2]),
    ("WE2", [2.5, 0, -2.1], []),
    ("WE3", [1.5, 1.2, 0, 1.1, 1.3], [4]),
    ("WE3", [1.5, 1.2, 0, -1.1, 1.3], []),
    ("WE4", [0.1, 0.2, 0.3, 0.1, 0.4, 0.2, 0.1, 0.3], [7]),
    ("WE4", [0.1, 0.2, 0.3, 0.1, -0.4, 0.2, 0.1, 0.3], []),
    ("N3", [-1, -0.5, 0, 0.2, 0.4, 0.6], [5]),
    ("N3", [-1, -0.5, 0, 0.2, 0.1, 0.6], []),
])
def test_each_rule_fires_only_on_its_pattern(rule: str, values: list[float],
                                             fires_at: list[int]) -> None:
    found = [v.index for v in western_electric(values, LIMITS) if v.rule == rule]
    assert found == fires_at


def test_limits_come_from_the_baseline_not_the_judged_data() -> None:
    baseline = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1, 10.0]
    x, _ = individuals_limits(baseline)
    judged = [10.0, 10.1, 12.5]  # a shift that would widen limits computed from itself
    assert [v.rule for v in western_electric(judged, x)] == ["WE1"]


def test_violations_become_process_events_once(session: Session) -> None:
    setup_plant(session)
    acting(session, "mes-admin")
    signal = session.scalars(select(Signal.id).where(Signal.code == SIGNAL)).one()
    values = [50, 51, 49, 50, 52, 48, 50, 51, 49, 50, 70]
    session.execute(_insert_samples(signal, values))
    session.commit()
    series = load_series(session, signal=SIGNAL, since=at(6), until=at(7))
    session.rollback()
    x, _ = individuals_limits([p.value for p in series.points[:10]])
    violations = western_electric([p.value for p in series.points], x)
    assert [v.rule for v in violations] == ["WE1"]
    with session.begin():
        assert record_violations(session, series, "individuals", violations) == 1
    with session.begin():
        assert record_violations(session, series, "individuals", violations) == 0
    event = session.scalars(select(ProcessEvent)).one()
    assert (event.kind, event.subject, event.rule, event.value) == (
        "spc", f"signal:{SIGNAL}", "individuals:WE1", 70)


def _insert_samples(signal: int, values: Sequence[float]) -> TextClause:
    """One sample a minute from 06:00."""
    return text("INSERT INTO ts.process_value (ts, signal_id, value) "
                "SELECT :start + (i - 1) * interval '1 minute', :s, v "
                "FROM unnest(CAST(:values AS double precision[])) WITH ORDINALITY u(v, i)"
                ).bindparams(start=at(6), s=signal, values=values)


def test_mes_spc_check(session: Session, use_database: str) -> None:
    setup_plant(session)
    acting(session, "mes-admin")
    signal = session.scalars(select(Signal.id).where(Signal.code == SIGNAL)).one()
    session.execute(_insert_samples(signal, [50, 51, 49, 50, 52, 48, 50, 51, 49, 50, 70]))
    session.commit()
    base = ["--baseline-from", at(6).isoformat(), "--baseline-to", at(6, 10).isoformat()]
    result = CliRunner().invoke(app, ["spc", "check", "--signal", SIGNAL, *base,
                                      "--from", at(6, 5).isoformat(),
                                      "--to", at(7).isoformat(),
                                      "--record"])
    assert result.exit_code == 0, result.output
    assert "WE1" in result.output and "Cpk" in result.output
    assert "1 new events recorded" in result.output
