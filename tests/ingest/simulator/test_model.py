"""The line model: determinism, a believable shift of behaviour, counters and sensors."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest

from ingest.simulator.layout import COUNTER_MODULUS, fault_code_signal
from ingest.simulator.model import REJECT_RATE, Change, LineModel
from tests.ingest.simulator.conftest import PlantMaker, machine
from transactional.plant_file import PlantDefinition

SHIFT_SECONDS = 8 * 3600


def run(model: LineModel, steps: int, dt: float = 0.1) -> list[list[Change]]:
    return [model.step(dt) for _ in range(steps)]


@dataclass
class MachineStory:
    """What one machine did over a run, as a collector would reconstruct it."""

    states: list[tuple[float, int]] = field(default_factory=list)
    fault_codes: set[int] = field(default_factory=set)
    good: int = 0
    reject: int = 0


@pytest.fixture(scope="module")
def shift(plant: PlantDefinition) -> dict[str, MachineStory]:
    """Eight simulated hours of the sample plant, one-second steps."""
    model = LineModel(plant, seed=7)
    signal_machine = {s.code: s for s in model.signals.values()}
    stories: dict[str, MachineStory] = defaultdict(MachineStory)
    last: dict[str, int | float] = {c.signal_code: c.value for c in model.values()}
    for machine_code in {s.machine_code for s in signal_machine.values()}:
        stories[machine_code].states.append((0.0, 1))
    for step in range(1, SHIFT_SECONDS + 1):
        for change in model.step(1.0):
            signal = signal_machine[change.signal_code]
            story = stories[signal.machine_code]
            if signal.kind == "state":
                story.states.append((float(step), int(change.value)))
            elif signal.kind == "fault_code" and change.value:
                story.fault_codes.add(int(change.value))
            elif signal.kind in ("good_count", "reject_count"):
                delta = int(change.value) - int(last[change.signal_code])
                if signal.kind == "good_count":
                    story.good += delta
                else:
                    story.reject += delta
            last[change.signal_code] = change.value
    return stories


def durations(story: MachineStory, state: int) -> list[float]:
    ends = [*story.states[1:], (float(SHIFT_SECONDS), -1)]
    return [end - start for (start, code), (end, _) in zip(story.states, ends, strict=True)
            if code == state]


def test_same_seed_same_changes_other_seed_other_changes(plant: PlantDefinition) -> None:
    first = run(LineModel(plant, seed=42), 3000)
    again = run(LineModel(plant, seed=42), 3000)
    other = run(LineModel(plant, seed=43), 3000)
    assert first == again
    assert first != other
    assert LineModel(plant, seed=42).values() == LineModel(plant, seed=42).values()


def test_every_machine_runs_and_counts_parts_near_its_cycle_time(
        shift: dict[str, MachineStory], plant: PlantDefinition) -> None:
    for definition in plant.machines:
        story = shift[definition.code]
        running = sum(durations(story, 1))
        assert running > 0.4 * SHIFT_SECONDS, definition.code
        cycle = min(definition.ideal_cycle_times.values())
        parts = story.good + story.reject
        # Never faster than ideal; a few percent slower on average; at most two products.
        ideal_parts = running / cycle
        assert 0.6 * ideal_parts < parts <= ideal_parts * 1.01, definition.code


def test_a_shift_has_faults_setups_micro_stops_and_idling(
        shift: dict[str, MachineStory]) -> None:
    faults = [d for story in shift.values() for d in durations(story, 5)]
    setups = [d for story in shift.values() for d in durations(story, 3)]
    idles = [d for story in shift.values() for d in durations(story, 2)]
    fault_codes = set().union(*(story.fault_codes for story in shift.values()))
    assert len(faults) >= 20
    assert fault_codes <= set(range(1, 21)) and len(fault_codes) >= 5
    assert all(story.fault_codes for story in shift.values())
    assert len(setups) >= 4 and min(setups) >= 300
    micro_stops = [d for d in idles if d <= 15]
    longer_idles = [d for d in idles if d >= 30]
    assert len(micro_stops) >= 200 and min(micro_stops) >= 2
    assert len(longer_idles) >= 20
    # Repair times vary: a lognormal spread, not one fixed duration.
    assert max(faults) > 4 * min(faults)


def test_reject_share_is_near_the_reject_rate(shift: dict[str, MachineStory]) -> None:
    good = sum(story.good for story in shift.values())
    reject = sum(story.reject for story in shift.values())
    assert good + reject > 50_000
    assert reject / (good + reject) == pytest.approx(REJECT_RATE, abs=0.004)


def test_fault_code_is_set_while_faulted_and_zero_otherwise(plant: PlantDefinition) -> None:
    model = LineModel(plant, seed=3)
    fault_signal = fault_code_signal("PRESS-1")
    state, fault = 1, 0
    seen_fault = False
    for _ in range(4 * 3600):
        for change in model.step(1.0):
            if change.signal_code == "PRESS-1.state":
                state = int(change.value)
            elif change.signal_code == fault_signal:
                fault = int(change.value)
        assert (fault != 0) == (state == 5)
        seen_fault = seen_fault or fault != 0
    assert seen_fault


def test_counters_roll_over_at_32_bits(plant: PlantDefinition) -> None:
    model = LineModel(plant, seed=1, counter_start=COUNTER_MODULUS - 5)
    goods = [c.value for step in run(model, 600, 1.0) for c in step
             if c.signal_code == "PRESS-1.good"]
    assert goods[0] > COUNTER_MODULUS - 5
    wrap = next(i for i, (a, b) in enumerate(itertools.pairwise(goods)) if b < a)
    assert goods[wrap] == COUNTER_MODULUS - 1 and goods[wrap + 1] == 0
    assert all(0 <= value < COUNTER_MODULUS for value in goods)


def test_counter_start_must_fit_32_bits(plant: PlantDefinition) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        LineModel(plant, seed=1, counter_start=COUNTER_MODULUS)


def test_reset_counters_restarts_one_machine_at_zero(plant: PlantDefinition) -> None:
    model = LineModel(plant, seed=1, counter_start=1000)
    run(model, 100, 1.0)
    model.reset_counters("PRESS-2")
    changes = {c.signal_code: c.value for c in model.step(0.1)}
    assert changes["PRESS-2.good"] == 0 and changes["PRESS-2.reject"] == 0
    assert "PRESS-1.good" not in changes or changes["PRESS-1.good"] > 1000
    with pytest.raises(ValueError, match="no machine 'PRESS-9'"):
        model.reset_counters("PRESS-9")


def test_process_values_drift_inside_their_limits_and_change_every_step(
        plant: PlantDefinition) -> None:
    model = LineModel(plant, seed=5)
    limits = {s.code: (s.low_limit, s.high_limit) for m in plant.machines for s in m.signals
              if s.kind == "process_value"}
    values: dict[str, list[float]] = defaultdict(list)
    states: dict[str, int] = {}
    speeds_when_stopped: list[float] = []
    for _ in range(3600):
        step = model.step(1.0)
        assert {c.signal_code for c in step} >= set(limits)
        for change in step:
            if change.signal_code.endswith(".state"):
                states[change.signal_code.removesuffix(".state")] = int(change.value)
            if change.signal_code in limits:
                values[change.signal_code].append(float(change.value))
                machine_code = change.signal_code.rsplit(".", 1)[0]
                if change.signal_code.endswith(".speed") and states.get(machine_code, 1) != 1:
                    speeds_when_stopped.append(float(change.value))
    for code, series in values.items():
        low, high = limits[code]
        assert low is not None and high is not None
        inside = sum(low <= v <= high for v in series) / len(series)
        assert inside > 0.99, code
        assert len(set(series)) > 0.9 * len(series), f"{code} should change every step"
        # Slow drift: consecutive readings differ by noise, not by jumps across the range.
        if not code.endswith(".speed"):
            jumps = [abs(b - a) for a, b in itertools.pairwise(series)]
            assert max(jumps) < 0.15 * (high - low), code
    assert speeds_when_stopped and max(speeds_when_stopped) < 0.05 * 60


def test_any_plant_works_and_missing_categories_are_skipped(make_plant: PlantMaker) -> None:
    plant = make_plant(
        [machine("M1", ("state", "state"), ("good", "good_count"), ("flow", "process_value")),
         machine("M2", ("level", "process_value"))],
        states=[{"code": 10, "name": "Producing", "category": "running"},
                {"code": 20, "name": "Broken", "category": "unplanned_stop"}])
    model = LineModel(plant, seed=0)
    states: Counter[int] = Counter()
    goods = []
    for _ in range(6 * 3600):
        for change in model.step(1.0):
            if change.signal_code == "M1.state":
                states[int(change.value)] += 1
            elif change.signal_code == "M1.good":
                goods.append(change.value)
            elif change.signal_code == "M2.level":
                assert -50 < float(change.value) < 150  # no limits: around 0..100
    assert set(states) == {10, 20}
    # No ideal cycle time: a part every two seconds or a little more while running.
    assert 0.3 * 6 * 1800 < goods[-1] < 6 * 1800
    assert {c.signal_code for c in model.values()} == {
        "M1.state", "M1.fault_code", "M1.good", "M1.flow", "M2.fault_code", "M2.level"}


def test_a_signal_named_like_a_fault_code_is_refused(make_plant: PlantMaker) -> None:
    plant = make_plant([machine("M1", ("state", "state"), ("fault_code", "process_value"))])
    with pytest.raises(ValueError, match=r"M1\.fault_code"):
        LineModel(plant, seed=0)


def test_time_only_runs_forward(plant: PlantDefinition) -> None:
    with pytest.raises(ValueError, match="forward"):
        LineModel(plant, seed=0).step(-1.0)
