"""Turns raw readings from the collectors into the rows the hypertables store.

States are kept only when they change, process values pass a per-signal deadband, and
cumulative counters become increments that survive PLC counter resets and rollover. The
state that carries across restarts (counter baselines, last machine state) can be saved
and restored. Writing rows is the writer's job.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

from ingest.tagmap import Binding

_STEP = dt.timedelta(microseconds=1)
_INT4_MAX = 2**31 - 1

log = logging.getLogger("mes.ingest.conditioning")


class Quality(IntEnum):
    """Sample quality codes; the same table is mes.sample_quality in the database."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    OUT_OF_RANGE = 3
    COMMUNICATION_LOST = 4
    DEVICE_EXCEPTION = 5
    TIMEOUT = 6


class Reading(NamedTuple):
    """One value a source reported. For a state binding, `reason` is the machine's fault
    or reason code; a state reading with value None and a reason changes only the reason."""

    binding: Binding
    ts: dt.datetime
    value: float | None
    quality: int = Quality.GOOD
    reason: int | None = None


ProcessValueRow = tuple[dt.datetime, int, float | None, int]
EquipmentStateRow = tuple[dt.datetime, int, int, int | None]
ProductionCountRow = tuple[dt.datetime, int, int, int]


@dataclass
class Rows:
    """Rows bound for the three hypertables, in the column order of their COPY."""

    process_value: list[ProcessValueRow] = field(default_factory=list)
    equipment_state: list[EquipmentStateRow] = field(default_factory=list)
    production_count: list[ProductionCountRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.process_value) + len(self.equipment_state) + len(self.production_count)

    def extend(self, other: Rows) -> None:
        self.process_value += other.process_value
        self.equipment_state += other.equipment_state
        self.production_count += other.production_count


@dataclass
class CarryOver:
    """What conditioning must remember across a collector restart: counter baselines.

    They let the first reading after a restart count the parts made while the collector
    was down, instead of starting the count afresh. Machine states are not carried over:
    the first state after a restart is stored again, so a state change the crash may have
    kept from the database cannot be hidden by a remembered one.
    """

    counters: dict[int, int] = field(default_factory=dict)  # signal id -> raw value

    def to_json(self) -> dict[str, Any]:
        return {"counters": {str(k): v for k, v in self.counters.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CarryOver:
        return cls(counters={int(k): int(v) for k, v in data.get("counters", {}).items()})


class Conditioner:
    """Stateful: feed it readings in arrival order, one source's readings in time order."""

    def __init__(self, carry_over: CarryOver | None = None) -> None:
        carry = carry_over or CarryOver()
        self._counters = dict(carry.counters)
        self._states: dict[int, tuple[int, int | None]] = {}  # equipment id -> state, reason
        self._last_value: dict[int, tuple[float | None, int]] = {}
        self._reasons: dict[int, int | None] = {}
        # Equipment rows are keyed by (equipment, ts): a second row at the same instant
        # would be refused, so later rows move forward by a microsecond.
        self._last_state_ts: dict[int, dt.datetime] = {}
        self._last_count_ts: dict[int, dt.datetime] = {}
        self.refused = 0  # readings that cannot be stored: not a state code, counter...
        self._refused_signals: set[str] = set()

    def _refuse(self, reading: Reading, why: str) -> None:
        # Stored, such a value would be wrapped into the integer column: refuse it, and
        # say so once per signal rather than on every poll.
        self.refused += 1
        code = reading.binding.signal.code
        if code not in self._refused_signals:
            self._refused_signals.add(code)
            log.warning("%s: value %r from %s %s is refused: it %s", code, reading.value,
                        reading.binding.source, reading.binding.address, why)

    def carry_over(self) -> CarryOver:
        return CarryOver(counters=dict(self._counters))

    def condition(self, readings: list[Reading], rows: Rows) -> None:
        counts: dict[tuple[int, dt.datetime], list[int]] = {}
        for reading in readings:
            kind = reading.binding.signal.kind
            if kind == "process_value":
                self._process_value(reading, rows.process_value)
            elif kind == "state":
                self._state(reading, rows.equipment_state)
            else:
                self._count(reading, counts)
        for (equipment_id, ts), (good, reject) in counts.items():
            last = self._last_count_ts.get(equipment_id)
            if last is not None and ts <= last:
                ts = last + _STEP
            self._last_count_ts[equipment_id] = ts
            rows.production_count.append((ts, equipment_id, good, reject))

    def _process_value(self, reading: Reading, out: list[ProcessValueRow]) -> None:
        signal = reading.binding.signal
        value, quality = reading.value, reading.quality
        if value is not None and not math.isfinite(value):
            value, quality = None, Quality.BAD  # NaN or infinity is no measurement
        if value is not None and quality == Quality.GOOD and (
                (signal.low_limit is not None and value < signal.low_limit)
                or (signal.high_limit is not None and value > signal.high_limit)):
            quality = Quality.OUT_OF_RANGE
        deadband = reading.binding.deadband
        if deadband:
            last = self._last_value.get(signal.signal_id)
            if (last is not None and last[1] == quality and value is not None
                    and last[0] is not None and abs(value - last[0]) <= deadband):
                return
            self._last_value[signal.signal_id] = (value, quality)
        out.append((reading.ts, signal.signal_id, value, quality))

    def _state(self, reading: Reading, out: list[EquipmentStateRow]) -> None:
        if reading.quality != Quality.GOOD:
            return  # an unknown state is not a state; the gap shows on the process values
        equipment_id = reading.binding.signal.equipment_id
        if reading.value is not None and not _fits(reading.value):
            self._refuse(reading, "is not a state code (0 to 2147483647)")
            return
        reason = reading.reason if reading.reason is None or _fits(reading.reason) else None
        if reading.reason is not None or reading.value is None:
            self._reasons[equipment_id] = reason
        last = self._states.get(equipment_id)
        if reading.value is None:
            if last is None:
                return
            state = last[0]
        else:
            state = int(reading.value)
        current = (state, self._reasons.get(equipment_id))
        if current == last:
            return
        self._states[equipment_id] = current
        ts = reading.ts
        previous_ts = self._last_state_ts.get(equipment_id)
        if previous_ts is not None and ts <= previous_ts:
            ts = previous_ts + _STEP
        self._last_state_ts[equipment_id] = ts
        out.append((ts, equipment_id, current[0], current[1]))

    def _count(self, reading: Reading, counts: dict[tuple[int, dt.datetime], list[int]]) -> None:
        if reading.quality != Quality.GOOD or reading.value is None:
            return
        binding = reading.binding
        if (reading.value != int(reading.value)
                or not 0 <= reading.value < binding.counter_modulus):
            self._refuse(reading, f"is not a counter reading (0 to {binding.counter_modulus - 1})")
            return
        raw = int(reading.value)
        baseline = self._counters.get(binding.signal.signal_id)
        self._counters[binding.signal.signal_id] = raw
        if baseline is None or raw == baseline:
            return
        increment = counter_increment(baseline, raw, binding.counter_modulus)
        if increment > _INT4_MAX:
            self._refuse(reading, f"jumps by {increment} parts from {baseline}; counting "
                                  "starts again from this reading")
            return
        slot = counts.setdefault((binding.signal.equipment_id, reading.ts), [0, 0])
        slot[0 if binding.signal.kind == "good_count" else 1] += increment


def _fits(value: float) -> bool:
    return value == int(value) and 0 <= value <= _INT4_MAX


def counter_increment(previous: int, current: int, modulus: int) -> int:
    """Parts counted between two raw readings of a cumulative counter.

    A counter that went down either rolled over (it was near the top: the wrapped
    distance is short) or was reset by a PLC restart (it counts again from zero).
    """
    if current >= previous:
        return current - previous
    wrapped = modulus - previous + current
    return wrapped if wrapped < modulus // 2 else current
