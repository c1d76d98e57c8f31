"""Conditioning: raw readings become the rows the hypertables keep.

States only on change, process values through their deadband with out-of-range flagged,
counters as increments across rollover and PLC resets, and what survives a restart.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ingest.conditioning import (
    CarryOver,
    Conditioner,
    Quality,
    Reading,
    Rows,
    judge_counter,
)
from ingest.tagmap import Binding, PlantSignal

PRESS = 11
OVEN = 12
T0 = dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)

STATE = Binding(PlantSignal(1, "PRESS-1.state", "state", PRESS, "PRESS-1"), "PRESS-1",
                "holding:0")
GOOD = Binding(PlantSignal(2, "PRESS-1.good", "good_count", PRESS, "PRESS-1"), "PRESS-1",
               "holding:2")
REJECT = Binding(PlantSignal(3, "PRESS-1.reject", "reject_count", PRESS, "PRESS-1"),
                 "PRESS-1", "holding:4")
TEMPERATURE = PlantSignal(4, "PRESS-1.temperature", "process_value", PRESS, "PRESS-1",
                          10.0, 90.0)
OVEN_STATE = Binding(PlantSignal(5, "OVEN-1.state", "state", OVEN, "OVEN-1"), "OVEN-1",
                     "holding:0")
GOOD_LANE_2 = Binding(PlantSignal(6, "PRESS-1.good2", "good_count", PRESS, "PRESS-1"),
                      "PRESS-1", "holding:20")
GOOD_16 = Binding(PlantSignal(7, "PRESS-1.good16", "good_count", PRESS, "PRESS-1"),
                  "PRESS-1", "holding:30", counter_modulus=2**16)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def temperature(deadband: float = 0.0) -> Binding:
    return Binding(TEMPERATURE, "PRESS-1", "holding:6", deadband=deadband)


def condition(conditioner: Conditioner, *readings: Reading) -> Rows:
    rows = Rows()
    conditioner.condition(list(readings), rows)
    return rows


def states(conditioner: Conditioner, *readings: Reading) -> list[tuple[dt.datetime, int, int,
                                                                    int | None]]:
    rows = condition(conditioner, *readings)
    assert rows.process_value == rows.production_count == []
    return rows.equipment_state


def counts(conditioner: Conditioner, *readings: Reading) -> list[tuple[dt.datetime, int, int,
                                                                    int]]:
    rows = condition(conditioner, *readings)
    assert rows.process_value == rows.equipment_state == []
    return rows.production_count


# --- machine states ------------------------------------------------------------------

def test_a_state_is_stored_only_when_it_changes() -> None:
    conditioner = Conditioner()
    rows = states(conditioner,
                  Reading(STATE, at(0), 1, reason=0),
                  Reading(STATE, at(1), 1, reason=0),
                  Reading(STATE, at(2), 5, reason=42),
                  Reading(STATE, at(3), 5, reason=42))
    rows += states(conditioner, Reading(STATE, at(4), 5, reason=42),
                   Reading(STATE, at(5), 1, reason=0))
    assert rows == [(at(0), PRESS, 1, 0), (at(2), PRESS, 5, 42), (at(5), PRESS, 1, 0)]


@pytest.mark.parametrize("change", [
    Reading(STATE, at(1), None, reason=17),  # an OPC UA reason node on its own
    Reading(STATE, at(1), 5, reason=17),     # a Modbus state read with its reason register
], ids=["reason-only-reading", "same-state-new-reason"])
def test_a_reason_change_alone_stores_the_same_state_with_the_new_reason(
        change: Reading) -> None:
    conditioner = Conditioner()
    rows = states(conditioner, Reading(STATE, at(0), 5, reason=42), change)
    assert rows == [(at(0), PRESS, 5, 42), (at(1), PRESS, 5, 17)]


def test_a_reason_before_any_state_waits_for_the_state() -> None:
    conditioner = Conditioner()
    assert states(conditioner, Reading(STATE, at(0), None, reason=42)) == []
    assert states(conditioner, Reading(STATE, at(1), 5)) == [(at(1), PRESS, 5, 42)]


@pytest.mark.parametrize("quality", [Quality.BAD, Quality.UNCERTAIN, Quality.COMMUNICATION_LOST])
def test_a_state_of_doubtful_quality_is_no_state(quality: Quality) -> None:
    conditioner = Conditioner()
    assert states(conditioner, Reading(STATE, at(0), 0, quality)) == []
    rows = states(conditioner,
                  Reading(STATE, at(1), 1),
                  Reading(STATE, at(2), 5, quality, reason=42),
                  Reading(STATE, at(3), 1))
    # The doubtful reading neither made a row nor counted as a change to come back from.
    assert rows == [(at(1), PRESS, 1, None)]


def test_rows_of_one_equipment_at_one_instant_get_increasing_timestamps() -> None:
    conditioner = Conditioner()
    rows = states(conditioner,
                  Reading(STATE, at(0), 1),
                  Reading(OVEN_STATE, at(0), 1),
                  Reading(STATE, at(0), 2),
                  Reading(STATE, at(0), 3))
    rows += states(conditioner, Reading(STATE, at(0), 4), Reading(OVEN_STATE, at(0), 2))
    assert rows == [
        (at(0), PRESS, 1, None),
        (at(0), OVEN, 1, None),
        (at(0) + MICRO, PRESS, 2, None),
        (at(0) + 2 * MICRO, PRESS, 3, None),
        (at(0) + 3 * MICRO, PRESS, 4, None),
        (at(0) + MICRO, OVEN, 2, None),
    ]
    # A reading stamped earlier than the last row still lands after it.
    assert states(conditioner, Reading(STATE, at(-1), 5)) == [
        (at(0) + 4 * MICRO, PRESS, 5, None)]


def test_count_rows_of_one_equipment_at_one_instant_get_increasing_timestamps() -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(GOOD, at(0), 10))
    assert counts(conditioner, Reading(GOOD, at(1), 11)) == [(at(1), PRESS, 1, 0)]
    assert counts(conditioner, Reading(GOOD, at(1), 13)) == [(at(1) + MICRO, PRESS, 2, 0)]


# --- process values ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "quality", "stored_quality"), [
    (95.0, Quality.GOOD, Quality.OUT_OF_RANGE),
    (9.5, Quality.GOOD, Quality.OUT_OF_RANGE),
    (90.0, Quality.GOOD, Quality.GOOD),
    (10.0, Quality.GOOD, Quality.GOOD),
    (95.0, Quality.UNCERTAIN, Quality.UNCERTAIN),
    (None, Quality.COMMUNICATION_LOST, Quality.COMMUNICATION_LOST),
], ids=["above-high", "below-low", "at-high", "at-low", "uncertain-kept", "no-value"])
def test_a_value_outside_the_limits_is_flagged_and_kept(
        value: float | None, quality: Quality, stored_quality: Quality) -> None:
    rows = condition(Conditioner(), Reading(temperature(), at(0), value, quality))
    assert rows.process_value == [(at(0), TEMPERATURE.signal_id, value, stored_quality)]
    assert len(rows) == 1


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_value_that_is_no_number_is_kept_as_bad_without_a_value(value: float) -> None:
    rows = condition(Conditioner(), Reading(temperature(), at(0), value))
    assert rows.process_value == [(at(0), 4, None, Quality.BAD)]


@pytest.mark.parametrize("state", [-1, 2**31, 2.5])
def test_a_state_that_is_no_state_code_is_refused_and_counted(state: float) -> None:
    conditioner = Conditioner()
    assert states(conditioner, Reading(STATE, at(0), state)) == []
    assert conditioner.refused == 1
    assert states(conditioner, Reading(STATE, at(1), 3)) == [(at(1), PRESS, 3, None)]


def test_the_deadband_keeps_only_changes_beyond_it_from_the_last_kept_value() -> None:
    conditioner = Conditioner()
    binding = temperature(deadband=0.5)
    values = [50.0, 50.3, 50.5, 49.6, 50.55, 50.2, 51.06]
    rows = condition(conditioner, *(Reading(binding, at(i), v) for i, v in enumerate(values)))
    # 50.55 is 0.55 from the kept 50.0 though only 0.25 from the reading before it:
    # small steps do not creep past the deadband unseen.
    assert [(ts, value) for ts, _, value, _ in rows.process_value] == [
        (at(0), 50.0), (at(4), 50.55), (at(6), 51.06)]


def test_a_quality_change_passes_the_deadband() -> None:
    conditioner = Conditioner()
    binding = temperature(deadband=0.5)
    rows = condition(conditioner,
                     Reading(binding, at(0), 89.8),
                     Reading(binding, at(1), 89.8, Quality.UNCERTAIN),
                     Reading(binding, at(2), 89.9, Quality.UNCERTAIN),
                     Reading(binding, at(3), 89.9),
                     Reading(binding, at(4), 90.1),          # out of range: quality changes
                     Reading(binding, at(5), 90.3),
                     Reading(binding, at(6), None, Quality.COMMUNICATION_LOST),
                     Reading(binding, at(7), 90.3))
    assert [(ts, value, quality) for ts, _, value, quality in rows.process_value] == [
        (at(0), 89.8, Quality.GOOD),
        (at(1), 89.8, Quality.UNCERTAIN),
        (at(3), 89.9, Quality.GOOD),
        (at(4), 90.1, Quality.OUT_OF_RANGE),
        (at(6), None, Quality.COMMUNICATION_LOST),
        (at(7), 90.3, Quality.OUT_OF_RANGE),
    ]


def test_changes_only_with_a_heartbeat_keeps_a_quiet_value_now_and_then() -> None:
    conditioner = Conditioner()
    binding = Binding(TEMPERATURE, "PRESS-1", "holding:6", deadband=0.0, changes_only=True,
                      heartbeat_seconds=1.0)
    readings = [(0.0, 50.0), (0.1, 50.0), (0.9, 50.0), (1.0, 50.0), (1.5, 50.0),
                (1.6, 50.1), (1.7, 50.1), (2.7, 50.1), (2.8, None)]
    rows = condition(conditioner, *(
        Reading(binding, at(s), v, Quality.GOOD if v is not None else Quality.TIMEOUT)
        for s, v in readings))
    # Unchanged values wait for the heartbeat; a change, or a change of quality, at once.
    assert [(ts, value) for ts, _, value, _ in rows.process_value] == [
        (at(0), 50.0), (at(1.0), 50.0), (at(1.6), 50.1), (at(2.7), 50.1), (at(2.8), None)]


def test_without_a_deadband_every_reading_is_kept() -> None:
    conditioner = Conditioner()
    binding = temperature()
    values = [50.0, 50.0, 50.001, 50.0]
    rows = condition(conditioner, *(Reading(binding, at(i), v) for i, v in enumerate(values)))
    assert rows.process_value == [(at(i), TEMPERATURE.signal_id, v, Quality.GOOD)
                                  for i, v in enumerate(values)]


# --- counters ------------------------------------------------------------------------

def test_the_first_counter_reading_is_only_a_baseline() -> None:
    conditioner = Conditioner()
    assert counts(conditioner, Reading(GOOD, at(0), 1000), Reading(REJECT, at(0), 7)) == []
    assert conditioner.carry_over().counters == {GOOD.signal.signal_id: 1000,
                                                 REJECT.signal.signal_id: 7}


def test_increments_add_up_to_the_parts_made() -> None:
    conditioner = Conditioner()
    raw = [1000, 1003, 1003, 1010, 1011]
    rows = counts(conditioner, *(Reading(GOOD, at(i), v) for i, v in enumerate(raw[:3])))
    rows += counts(conditioner, *(Reading(GOOD, at(i), v) for i, v in enumerate(raw[3:], 3)))
    assert rows == [(at(1), PRESS, 3, 0), (at(3), PRESS, 7, 0), (at(4), PRESS, 1, 0)]
    assert sum(good for _, _, good, _ in rows) == raw[-1] - raw[0]


def test_good_and_reject_at_one_instant_make_one_row() -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(GOOD, at(0), 500), Reading(REJECT, at(0), 20),
           Reading(GOOD_LANE_2, at(0), 40))
    rows = counts(conditioner, Reading(GOOD, at(1), 506), Reading(REJECT, at(1), 22),
                  Reading(GOOD_LANE_2, at(1), 44), Reading(REJECT, at(2), 23))
    # Both good counters of the press add up; a reject a second later is its own row.
    assert rows == [(at(1), PRESS, 10, 2), (at(2), PRESS, 0, 1)]


# A press making a part every second at best: in 1 s it can have made 1 x 2 + 1 = 3 parts,
# in 10 minutes 1201.
FAST_PRESS = PlantSignal(20, "PRESS-1.good", "good_count", PRESS, "PRESS-1",
                         ideal_cycle_seconds=1.0)
TIMED_GOOD = Binding(FAST_PRESS, "PRESS-1", "holding:2")
TIMED_GOOD_16 = Binding(PlantSignal(21, "PRESS-1.good16", "good_count", PRESS, "PRESS-1",
                                    ideal_cycle_seconds=0.001),
                        "PRESS-1", "holding:30", counter_modulus=2**16)


def discontinuities(conditioner: Conditioner, *readings: Reading,
                    ) -> tuple[list[tuple[dt.datetime, int, int, int]],
                               list[tuple[dt.datetime, int, int, int, str, int]]]:
    rows = condition(conditioner, *readings)
    return rows.production_count, rows.counter_discontinuity


@pytest.mark.parametrize(("binding", "baseline", "raw", "parts"), [
    (TIMED_GOOD, 2**32 - 2, 1, 3),
    (TIMED_GOOD, 2**32 - 1, 0, 1),
    (GOOD, 2**32 - 3, 4, 7),
    (GOOD_16, 2**16 - 2, 2, 4),
    (TIMED_GOOD_16, 65_000, 535, 1071),
], ids=["uint32", "uint32-to-zero", "uint32-no-cycle-time", "uint16", "uint16-far-wrap"])
def test_a_counter_rolling_over_counts_the_parts_across_the_top(
        binding: Binding, baseline: int, raw: int, parts: int) -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(binding, at(0), baseline))
    made, recorded = discontinuities(conditioner, Reading(binding, at(1), raw))
    assert made == [(at(1), PRESS, parts, 0)]
    assert recorded == [(at(1), binding.signal.signal_id, baseline, raw, "rollover", parts)]
    assert conditioner.discontinuities == {"rollover": 1}


@pytest.mark.parametrize(("seconds", "raw"), [(1, 3), (600, 1201), (1, 0)],
                         ids=["1-s", "10-min", "to-zero"])
def test_a_reset_counts_the_parts_the_machine_can_have_made_since(seconds: int, raw: int,
                                                                  ) -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(TIMED_GOOD, at(0), 1_500_000))
    made, recorded = discontinuities(conditioner, Reading(TIMED_GOOD, at(seconds), raw))
    assert made == ([(at(seconds), PRESS, raw, 0)] if raw else [])
    assert recorded == [(at(seconds), FAST_PRESS.signal_id, 1_500_000, raw, "reset", raw)]
    assert counts(conditioner, Reading(TIMED_GOOD, at(seconds + 1), raw + 2)) == [
        (at(seconds + 1), PRESS, 2, 0)]


@pytest.mark.parametrize(("binding", "seconds", "baseline", "raw"), [
    (TIMED_GOOD, 1, 70_068, 70_000),   # a device back at a retained or preset value
    (TIMED_GOOD, 1, 1_500_000, 4),     # more than the 3 parts one second allows
    (TIMED_GOOD, 600, 5_000, 1202),
    (GOOD, 1, 1_500_000, 12),          # no cycle time: only a reset to 0 is plausible
    (GOOD_16, 1, 20_000, 3),
], ids=["preset", "too-many-for-1-s", "too-many-for-10-min", "no-cycle-time", "uint16"])
def test_a_counter_that_comes_back_implausibly_high_is_re_based_and_counts_nothing(
        binding: Binding, seconds: int, baseline: int, raw: int) -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(binding, at(0), baseline))
    made, recorded = discontinuities(conditioner, Reading(binding, at(seconds), raw))
    assert made == []
    assert recorded == [(at(seconds), binding.signal.signal_id, baseline, raw, "rebase", 0)]
    # The new value is the baseline: what follows counts from it.
    assert counts(conditioner, Reading(binding, at(seconds + 1), raw + 1)) == [
        (at(seconds + 1), PRESS, 1, 0)]
    assert conditioner.discontinuities == {"rebase": 1}


def test_the_time_since_the_last_reading_decides_and_survives_a_restart() -> None:
    before = Conditioner()
    counts(before, Reading(TIMED_GOOD, at(0), 70_068))
    carry = CarryOver.from_json(json.loads(json.dumps(before.carry_over().to_json())))
    assert carry.counter_at == {FAST_PRESS.signal_id: at(0)}
    # Down for an hour: 100 parts since a reset are plausible now.
    after = Conditioner(carry)
    made, recorded = discontinuities(after, Reading(TIMED_GOOD, at(3600), 100))
    assert made == [(at(3600), PRESS, 100, 0)]
    assert [r[4] for r in recorded] == ["reset"]


@pytest.mark.parametrize(("previous", "current", "modulus", "elapsed", "cycle", "judged"), [
    (0, 0, 2**32, 1.0, 1.0, (None, 0)),
    (100, 105, 2**32, 1.0, 1.0, (None, 5)),
    (2**32 - 1, 0, 2**32, 1.0, 1.0, ("rollover", 1)),
    (2**32 - 10, 5, 2**32, 10.0, 1.0, ("rollover", 15)),
    (2**32 - 10, 5, 2**32, 1.0, 1.0, ("rebase", 0)),
    (2**16 - 1, 0, 2**16, None, None, ("rollover", 1)),
    (65_530, 10, 2**16, None, None, ("rollover", 16)),
    (1_000, 12, 2**32, 10.0, 1.0, ("reset", 12)),
    (1_000, 0, 2**16, None, None, ("reset", 0)),
    (70_068, 70_000, 2**32, 0.1, 2.0, ("rebase", 0)),
    (70_068, 70_000, 2**32, None, 2.0, ("rebase", 0)),
], ids=["unchanged", "counted-up", "uint32-top-to-zero", "uint32-rollover",
        "too-far-to-wrap-in-time", "uint16-top-to-zero", "uint16-rollover", "uint32-reset",
        "reset-to-zero", "preset", "preset-no-time"])
def test_judge_counter(previous: int, current: int, modulus: int, elapsed: float | None,
                       cycle: float | None, judged: tuple[str | None, int]) -> None:
    assert judge_counter(previous, current, modulus, elapsed, cycle) == judged


def test_bad_counter_readings_do_not_move_the_baseline() -> None:
    conditioner = Conditioner()
    counts(conditioner, Reading(GOOD, at(0), 100))
    assert counts(conditioner,
                  Reading(GOOD, at(1), 0, Quality.COMMUNICATION_LOST),
                  Reading(GOOD, at(2), None, Quality.TIMEOUT),
                  Reading(GOOD, at(3), 7, Quality.BAD),
                  Reading(GOOD, at(4), None)) == []
    assert counts(conditioner, Reading(GOOD, at(5), 110)) == [(at(5), PRESS, 10, 0)]


# --- across a restart ----------------------------------------------------------------

def test_carry_over_survives_json_and_restores_counters_not_states() -> None:
    before = Conditioner()
    condition(before,
              Reading(STATE, at(0), 4, reason=42),
              Reading(OVEN_STATE, at(0), 1),
              Reading(GOOD, at(0), 100),
              Reading(REJECT, at(0), 7))
    carry = before.carry_over()
    assert carry == CarryOver(counters={2: 100, 3: 7}, counter_at={2: at(0), 3: at(0)})

    restored = CarryOver.from_json(json.loads(json.dumps(carry.to_json())))
    assert restored == carry

    after = Conditioner(restored)
    rows = condition(after,
                     Reading(STATE, at(600), 4, reason=42),
                     Reading(OVEN_STATE, at(600), 1),
                     Reading(GOOD, at(600), 130),
                     Reading(REJECT, at(600), 7))
    # The 30 parts made while the collector was stopped are counted; the states are
    # stored again, as what each machine was doing when collection resumed.
    assert rows.production_count == [(at(600), PRESS, 30, 0)]
    assert rows.equipment_state == [(at(600), PRESS, 4, 42), (at(600), OVEN, 1, None)]
    assert states(after, Reading(STATE, at(601), 4, reason=42)) == []


def test_an_empty_carry_over_starts_afresh() -> None:
    restored = CarryOver.from_json(json.loads(json.dumps(CarryOver().to_json())))
    assert restored == CarryOver()
    conditioner = Conditioner(restored)
    assert counts(conditioner, Reading(GOOD, at(0), 130)) == []
    assert states(conditioner, Reading(STATE, at(0), 1)) == [(at(0), PRESS, 1, None)]
