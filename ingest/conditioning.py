"""Turns raw readings from the collectors into the rows the hypertables store.

States are kept only when they change (a code the machine's state model lacks is kept and
marked), process values pass a per-signal deadband with an optional heartbeat, and
cumulative counters become increments; a counter that goes down is judged a rollover, a
reset or a re-base from what the machine could plausibly have made, and the decision is
recorded. Counter baselines carry across restarts. Writing rows is the writer's job.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal, NamedTuple

from ingest.tagmap import Binding

_STEP = dt.timedelta(microseconds=1)
_INT4_MAX = 2**31 - 1
_REMEMBERED_COUNT_TIMES = 256

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
Decision = Literal["rollover", "reset", "rebase"]
# ts, signal id, old raw value, new raw value, decision, parts counted
DiscontinuityRow = tuple[dt.datetime, int, int, int, str, int]
UnknownStateRow = tuple[dt.datetime, int, int]  # ts, equipment id, state code
# ts, equipment id, source, cause, end: a cause opens a collection gap at ts (closed at
# once when an end is given too); no cause closes the open gap of that equipment and
# source at ts.
GapRow = tuple[dt.datetime, int, str, str | None, dt.datetime | None]


@dataclass
class Rows:
    """Rows bound for the three hypertables, in the column order of their COPY, and the
    collection records that go with them in the same transaction."""

    process_value: list[ProcessValueRow] = field(default_factory=list)
    equipment_state: list[EquipmentStateRow] = field(default_factory=list)
    production_count: list[ProductionCountRow] = field(default_factory=list)
    counter_discontinuity: list[DiscontinuityRow] = field(default_factory=list)
    unknown_state: list[UnknownStateRow] = field(default_factory=list)
    collection_gap: list[GapRow] = field(default_factory=list)

    def __len__(self) -> int:
        """Time-series rows only: the records beside them are no samples."""
        return len(self.process_value) + len(self.equipment_state) + len(self.production_count)

    def __bool__(self) -> bool:
        return bool(len(self) or self.counter_discontinuity or self.unknown_state
                    or self.collection_gap)

    def extend(self, other: Rows) -> None:
        self.process_value += other.process_value
        self.equipment_state += other.equipment_state
        self.production_count += other.production_count
        self.counter_discontinuity += other.counter_discontinuity
        self.unknown_state += other.unknown_state
        self.collection_gap += other.collection_gap


@dataclass
class CarryOver:
    """What conditioning must remember across a collector restart: counter baselines.

    They let the first reading after a restart count the parts made while the collector
    was down, instead of starting the count afresh. Machine states are not carried over:
    the first state after a restart is stored again, so a state change the crash may have
    kept from the database cannot be hidden by a remembered one.
    """

    counters: dict[int, int] = field(default_factory=dict)  # signal id -> raw value
    # signal id -> when that raw value was read: how long a machine had to make the parts
    # a counter shows, when it is judged after a restart.
    counter_at: dict[int, dt.datetime] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"counters": {str(k): v for k, v in self.counters.items()},
                "counter_at": {str(k): v.isoformat() for k, v in self.counter_at.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CarryOver:
        return cls(counters={int(k): int(v) for k, v in data.get("counters", {}).items()},
                   counter_at={int(k): dt.datetime.fromisoformat(v)
                               for k, v in data.get("counter_at", {}).items()})


class Conditioner:
    """Stateful: feed it readings in arrival order, one source's readings in time order."""

    def __init__(self, carry_over: CarryOver | None = None) -> None:
        carry = carry_over or CarryOver()
        self._counters = dict(carry.counters)
        self._counter_at = dict(carry.counter_at)
        self._states: dict[int, tuple[int, int | None]] = {}  # equipment id -> state, reason
        # signal id -> value, quality and time of the last kept value
        self._last_value: dict[int, tuple[float | None, int, dt.datetime]] = {}
        self._reasons: dict[int, int | None] = {}
        # Equipment rows are keyed by (equipment, ts): a second state row at the same
        # instant would be refused, so later rows move forward by a microsecond.
        self._last_state_ts: dict[int, dt.datetime] = {}
        # Count rows keep their source time; only a row that would land on the very instant
        # of one already made for the machine moves (by a microsecond), so that it is not
        # taken for a replay of that row. equipment id -> recent count row times, in order.
        self._count_ts: dict[int, dict[dt.datetime, None]] = {}
        self.refused = 0  # readings that cannot be stored: not a state code, counter...
        self._refused_signals: set[str] = set()
        self.discontinuities: Counter[str] = Counter()  # decision -> how many
        self.unknown_states: Counter[str] = Counter()  # "machine state code" -> readings

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
        return CarryOver(counters=dict(self._counters), counter_at=dict(self._counter_at))

    def condition(self, readings: list[Reading], rows: Rows) -> None:
        counts: dict[tuple[int, dt.datetime], list[int]] = {}
        for reading in readings:
            kind = reading.binding.signal.kind
            if kind == "process_value":
                self._process_value(reading, rows.process_value)
            elif kind == "state":
                self._state(reading, rows)
            else:
                self._count(reading, counts, rows.counter_discontinuity)
        for (equipment_id, ts), (good, reject) in counts.items():
            made = self._count_ts.setdefault(equipment_id, {})
            while ts in made:
                ts += _STEP
            made[ts] = None
            if len(made) > _REMEMBERED_COUNT_TIMES:
                del made[next(iter(made))]
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
        binding = reading.binding
        deadband = binding.deadband
        if deadband or binding.changes_only:
            last = self._last_value.get(signal.signal_id)
            if (last is not None and last[1] == quality and (
                    (value is None and last[0] is None)
                    or (value is not None and last[0] is not None
                        and abs(value - last[0]) <= deadband))
                    and (binding.heartbeat_seconds is None
                         or (reading.ts - last[2]).total_seconds() < binding.heartbeat_seconds)):
                return
            self._last_value[signal.signal_id] = (value, quality, reading.ts)
        out.append((reading.ts, signal.signal_id, value, quality))

    def _state(self, reading: Reading, rows: Rows) -> None:
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
        rows.equipment_state.append((ts, equipment_id, current[0], current[1]))
        known = reading.binding.signal.state_codes
        if known is not None and current[0] not in known:
            rows.unknown_state.append((ts, equipment_id, current[0]))
            key = f"{reading.binding.signal.equipment_code} {current[0]}"
            if key not in self.unknown_states:
                log.warning("%s: state code %d from %s %s is not in the machine's state model "
                            "(%s); stored and marked unknown", reading.binding.signal.code,
                            current[0], reading.binding.source, reading.binding.address,
                            ", ".join(map(str, known)) or "no states")
            self.unknown_states[key] += 1

    def _count(self, reading: Reading, counts: dict[tuple[int, dt.datetime], list[int]],
               discontinuities: list[DiscontinuityRow]) -> None:
        if reading.quality != Quality.GOOD or reading.value is None:
            return
        binding = reading.binding
        if (reading.value != int(reading.value)
                or not 0 <= reading.value < binding.counter_modulus):
            self._refuse(reading, f"is not a counter reading (0 to {binding.counter_modulus - 1})")
            return
        raw = int(reading.value)
        signal = binding.signal
        baseline = self._counters.get(signal.signal_id)
        baseline_at = self._counter_at.get(signal.signal_id)
        self._counters[signal.signal_id] = raw
        self._counter_at[signal.signal_id] = reading.ts
        if baseline is None or raw == baseline:
            return
        elapsed = (None if baseline_at is None
                   else max(0.0, (reading.ts - baseline_at).total_seconds()))
        decision, increment = judge_counter(baseline, raw, binding.counter_modulus, elapsed,
                                            signal.ideal_cycle_seconds)
        if decision is not None:
            discontinuities.append((reading.ts, signal.signal_id, baseline, raw, decision,
                                    increment))
            self.discontinuities[decision] += 1
            log.warning("%s: counter went from %d to %d at %s (%s %s): %s", signal.code,
                        baseline, raw, reading.ts.isoformat(), binding.source, binding.address,
                        _DECISION_TEXT[decision].format(increment))
        if increment > _INT4_MAX:
            self._refuse(reading, f"jumps by {increment} parts from {baseline}; counting "
                                  "starts again from this reading")
            return
        if increment == 0:
            return
        slot = counts.setdefault((signal.equipment_id, reading.ts), [0, 0])
        slot[0 if signal.kind == "good_count" else 1] += increment


_DECISION_TEXT: dict[str, str] = {
    "rollover": "rolled over the top of its range, {} parts counted",
    "reset": "reset, {} parts counted since",
    "rebase": "more than the machine could have made since a reset: nothing counted, the "
              "new value is the baseline",
}


def _fits(value: float) -> bool:
    return value == int(value) and 0 <= value <= _INT4_MAX


# A machine makes at most one part per ideal cycle; the margin and the extra part allow for
# timestamps taken at the reader, not at the counter.
PLAUSIBLE_MARGIN = 2.0
PLAUSIBLE_EXTRA_PARTS = 1


def plausible_parts(elapsed_seconds: float | None, ideal_cycle_seconds: float | None,
                    ) -> int | None:
    """The most parts a machine can have made in `elapsed_seconds`; None if unknown."""
    if elapsed_seconds is None or ideal_cycle_seconds is None or ideal_cycle_seconds <= 0:
        return None
    return (math.floor(elapsed_seconds / ideal_cycle_seconds * PLAUSIBLE_MARGIN)
            + PLAUSIBLE_EXTRA_PARTS)


def judge_counter(previous: int, current: int, modulus: int, elapsed_seconds: float | None,
                  ideal_cycle_seconds: float | None) -> tuple[Decision | None, int]:
    """Parts counted between two raw readings of a cumulative counter, and the decision
    taken when it went down (None when it did not).

    A counter that goes down is a discontinuity, not proof of a reset to zero: it rolled over
    if the wrapped distance is no more than the machine can have made; it was reset if the
    new value is no more than that; otherwise it is re-based (nothing counted, the new value
    is the baseline), as for a device that comes back at a retained or preset value. Without
    an ideal cycle time only a short wrap (a 1/1024 of the range) counts as a rollover and
    only a reset to 0 as a reset.
    """
    if current >= previous:
        return None, current - previous
    plausible = plausible_parts(elapsed_seconds, ideal_cycle_seconds)
    wrapped = modulus - previous + current
    if wrapped <= (plausible if plausible is not None else modulus >> 10):
        return "rollover", wrapped
    if current <= (plausible if plausible is not None else 0):
        return "reset", current
    return "rebase", 0
