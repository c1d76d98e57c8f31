"""Deterministic behaviour of a plant's machines: states, faults, part counters, process values.

Pure computation in simulated seconds: the same plant, seed and sequence of steps give the
same changes. It does no I/O and knows no wall clock; the runner decides when to step.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ingest.simulator.layout import COUNTER_MODULUS, fault_code_signal, plant_signals
from transactional.plant_file import MachineDef, PlantDefinition, SignalDef

Phase = Literal["running", "idle", "micro_stop", "setup", "fault"]

DEFAULT_CYCLE_SECONDS = 2.0
REJECT_RATE = 0.02
FAULT_CODES = range(1, 21)

# Mean running time between interruptions of each kind. Competing exponential clocks give
# a memoryless line: how long a machine has run says nothing about its next stop.
MEAN_RUN_BEFORE: dict[Phase, float] = {
    "micro_stop": 6 * 60.0,
    "idle": 50 * 60.0,
    "fault": 45 * 60.0,
    "setup": 3 * 3600.0,
}
# The state-model category each phase reports; a phase whose category the machine's state
# model lacks never happens on that machine.
CATEGORY: dict[Phase, str] = {
    "running": "running",
    "idle": "idle",
    "micro_stop": "idle",
    "setup": "setup",
    "fault": "unplanned_stop",
}
# A few fault codes cause most of the downtime, as on a real line's Pareto chart.
_FAULT_WEIGHTS = [1.0 / code for code in FAULT_CODES]
# Drift of process values: mean reversion over ten minutes, spread 8 % of the range, and
# per-sample noise 0.5 % of the range so that every step changes the value.
_DRIFT_SECONDS = 600.0
_DRIFT_SPREAD = 0.08
_NOISE = 0.005
_UNLIMITED_SPAN = 100.0


@dataclass(frozen=True)
class Change:
    """A new value for one served signal (a plant signal or `<machine>.fault_code`)."""

    signal_code: str
    value: int | float


def _float32(value: float) -> float:
    # Modbus carries process values as float32: serving only float32-exact numbers makes
    # OPC UA (Double) and Modbus report the same value.
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


def _machine_random(seed: int, machine_code: str) -> random.Random:
    # hash() of a str changes per process (PYTHONHASHSEED); a digest does not.
    digest = hashlib.sha256(f"{seed}/{machine_code}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class _ProcessValue:
    """A sensor reading: slow mean-reverting drift plus noise; speeds fall to ~0 at a stop."""

    def __init__(self, signal: SignalDef, rng: random.Random) -> None:
        low, high = signal.low_limit, signal.high_limit
        if low is None:
            low = 0.0 if high is None else high - _UNLIMITED_SPAN
        if high is None:
            high = low + _UNLIMITED_SPAN
        self.code = signal.code
        self.is_speed = signal.code.endswith(".speed")
        self.span = high - low
        share = rng.uniform(0.6, 0.8) if self.is_speed else rng.uniform(0.4, 0.6)
        self.nominal = low + share * self.span
        self.level = self.nominal
        self.value = _float32(self.level)

    def advance(self, rng: random.Random, dt: float, running: bool) -> float:
        # Exact Ornstein-Uhlenbeck update, stable for any step length.
        decay = math.exp(-dt / _DRIFT_SECONDS)
        spread = _DRIFT_SPREAD * self.span * math.sqrt(1.0 - decay * decay)
        self.level = self.nominal + (self.level - self.nominal) * decay + rng.gauss(0.0, spread)
        if self.is_speed and not running:
            reading = abs(rng.gauss(0.0, _NOISE * 0.2 * self.span))
        else:
            reading = self.level + rng.gauss(0.0, _NOISE * self.span)
        self.value = _float32(reading)
        return self.value


class _Machine:
    """One machine's phase, counters and sensors, driven by its own random stream."""

    def __init__(self, machine: MachineDef, state_codes: dict[str, int], seed: int,
                 counter_start: int) -> None:
        self.code = machine.code
        self.rng = _machine_random(seed, machine.code)
        self.state_codes = state_codes
        self.interruptions = {phase: 1.0 / mean for phase, mean in MEAN_RUN_BEFORE.items()
                              if CATEGORY[phase] in state_codes}
        # A setup is a changeover: the machine then makes the next product it knows.
        self.cycle_times = list(machine.ideal_cycle_times.values()) or [DEFAULT_CYCLE_SECONDS]
        self.product = 0
        self.reject_rate = REJECT_RATE
        self.good = counter_start
        self.reject = counter_start
        self.fault_code = 0
        self.phase: Phase = "running"
        self.phase_ends_at = math.inf
        self.next_phase: Phase = "running"
        self.next_part_at = math.inf
        self.state_signal = next((s.code for s in machine.signals if s.kind == "state"), None)
        self.good_signal = next((s.code for s in machine.signals if s.kind == "good_count"),
                                None)
        self.reject_signal = next(
            (s.code for s in machine.signals if s.kind == "reject_count"), None)
        self.fault_signal = fault_code_signal(machine.code)
        self.process_values = [_ProcessValue(s, self.rng) for s in machine.signals
                               if s.kind == "process_value"]
        self._start_running(0.0)
        # Machines do not start in lockstep: the first part is somewhere in its cycle.
        self.next_part_at = self.rng.uniform(0.0, self.cycle_times[0])
        self.served = dict(self._discrete_values())

    @property
    def state(self) -> int:
        return self.state_codes[CATEGORY[self.phase]]

    def _cycle(self) -> float:
        # Never faster than ideal, a few percent slower on average (performance < 100 %).
        return self.cycle_times[self.product] * (1.0 + self.rng.expovariate(1.0 / 0.06))

    def _start_running(self, at: float) -> None:
        self.phase = "running"
        self.fault_code = 0
        self.next_part_at = at + self._cycle()
        total = sum(self.interruptions.values())
        if total == 0.0:
            self.phase_ends_at = math.inf
            return
        self.phase_ends_at = at + self.rng.expovariate(total)
        pick = self.rng.random() * total
        for phase, rate in self.interruptions.items():
            self.next_phase = phase
            pick -= rate
            if pick < 0.0:
                break

    def _start_interruption(self, at: float) -> None:
        rng = self.rng
        self.phase = self.next_phase
        self.next_part_at = math.inf
        if self.phase == "micro_stop":
            duration = rng.uniform(3.0, 15.0)
        elif self.phase == "idle":
            duration = 30.0 + rng.expovariate(1.0 / 180.0)
        elif self.phase == "setup":
            duration = max(300.0, rng.gauss(900.0, 240.0))
            self.product = (self.product + 1) % len(self.cycle_times)
        else:
            # Lognormal repair times: median three minutes, the odd long breakdown.
            duration = min(2 * 3600.0, rng.lognormvariate(math.log(180.0), 0.9))
            self.fault_code = rng.choices(FAULT_CODES, weights=_FAULT_WEIGHTS)[0]
        self.phase_ends_at = at + duration

    def advance(self, until: float) -> None:
        while True:
            if self.phase == "running" and self.next_part_at <= min(self.phase_ends_at, until):
                if self.rng.random() < self.reject_rate:
                    self.reject = (self.reject + 1) % COUNTER_MODULUS
                else:
                    self.good = (self.good + 1) % COUNTER_MODULUS
                self.next_part_at += self._cycle()
            elif self.phase_ends_at <= until:
                if self.phase == "running":
                    self._start_interruption(self.phase_ends_at)
                else:
                    self._start_running(self.phase_ends_at)
            else:
                return

    def _discrete_values(self) -> Iterator[tuple[str, int]]:
        # The fault code goes before the state: a collector that reads the reason when the
        # state changes then finds the fault that caused the stop, not the previous one.
        yield self.fault_signal, self.fault_code
        if self.state_signal is not None:
            yield self.state_signal, self.state
        if self.good_signal is not None:
            yield self.good_signal, self.good
        if self.reject_signal is not None:
            yield self.reject_signal, self.reject

    def changes(self, dt: float) -> Iterator[Change]:
        for code, value in self._discrete_values():
            if self.served[code] != value:
                self.served[code] = value
                yield Change(code, value)
        running = self.phase == "running"
        for sensor in self.process_values:
            yield Change(sensor.code, sensor.advance(self.rng, dt, running))

    def values(self) -> Iterator[Change]:
        for code, value in self._discrete_values():
            yield Change(code, value)
        for sensor in self.process_values:
            yield Change(sensor.code, sensor.value)


class LineModel:
    """Every machine of a plant, stepped together through simulated time."""

    def __init__(self, plant: PlantDefinition, seed: int, counter_start: int = 0) -> None:
        if not 0 <= counter_start < COUNTER_MODULUS:
            raise ValueError(f"counter_start {counter_start} is outside 0..{COUNTER_MODULUS - 1}"
                             " (the counters are 32-bit)")
        self.signals = plant_signals(plant)
        models = {model.code: model for model in plant.state_models}
        self._machines: dict[str, _Machine] = {}
        for machine in plant.machines:
            if machine.state_model not in models:
                raise ValueError(f"machine {machine.code}: unknown state model "
                                 f"{machine.state_model!r}")
            state_codes: dict[str, int] = {}
            for state in models[machine.state_model].states:
                state_codes.setdefault(state.category, state.code)
            if "running" not in state_codes:
                raise ValueError(f"machine {machine.code}: state model {machine.state_model!r} "
                                 "has no running state")
            self._machines[machine.code] = _Machine(machine, state_codes, seed, counter_start)
        self.time = 0.0

    def step(self, dt_seconds: float) -> list[Change]:
        """Advance `dt_seconds` of simulated time; the served values that changed, in order."""
        if not dt_seconds >= 0.0:
            raise ValueError(f"cannot step by {dt_seconds} s: time only runs forward")
        self.time += dt_seconds
        changes: list[Change] = []
        for machine in self._machines.values():
            machine.advance(self.time)
            changes.extend(machine.changes(dt_seconds))
        return changes

    def values(self) -> list[Change]:
        """The current value of every served signal (what a server starts with)."""
        return [change for machine in self._machines.values() for change in machine.values()]

    def phase(self, machine_code: str) -> Phase:
        """What a machine is doing now (micro-stops and idling both report the idle state)."""
        return self._machine(machine_code).phase

    def reset_counters(self, machine_code: str) -> None:
        """Both part counters back to 0, as after a PLC restart; served on the next step."""
        machine = self._machine(machine_code)
        machine.good = 0
        machine.reject = 0

    def preset_counters(self, machine_code: str, good: int | None = None,
                        reject: int | None = None) -> None:
        """Set part counters to given values (a retained or preset value after a restart)."""
        machine = self._machine(machine_code)
        for name, value in (("good", good), ("reject", reject)):
            if value is None:
                continue
            if not 0 <= value < COUNTER_MODULUS:
                raise ValueError(f"{machine_code}: {name} counter {value} is outside "
                                 f"0..{COUNTER_MODULUS - 1} (the counters are 32-bit)")
            setattr(machine, name, value)

    def _machine(self, machine_code: str) -> _Machine:
        try:
            return self._machines[machine_code]
        except KeyError:
            raise ValueError(f"no machine {machine_code!r} in the plant") from None
