"""How many process-value rows a per-signal deadband saves on the simulator's plant.

The line model is stepped offline (no servers, no database) and its process-value changes
go through the collector's own Conditioner, once without a deadband and once per deadband
given as a percent of each signal's range. Only counting; nothing is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bench.ingest.plants import offline_signals
from ingest.conditioning import Conditioner, Reading, Rows
from ingest.simulator.model import LineModel
from ingest.tagmap import Binding, PlantSignal
from transactional.plant_file import PlantDefinition

_START = dt.datetime(2025, 1, 6, tzinfo=dt.UTC)
_CHUNK = 1000  # as the writer conditions


def deadband_savings(plant: PlantDefinition, seed: int, simulated_seconds: float,
                     tick_seconds: float, percents: tuple[float, ...]) -> dict[str, Any]:
    signals = offline_signals(plant)
    model = LineModel(plant, seed)
    changes: list[tuple[str, dt.datetime, float]] = []
    for step in range(1, round(simulated_seconds / tick_seconds) + 1):
        ts = _START + dt.timedelta(seconds=step * tick_seconds)
        changes += [(c.signal_code, ts, float(c.value)) for c in model.step(tick_seconds)
                    if c.signal_code in signals]
    kept_without = _kept(changes, signals, dict.fromkeys(signals, 0.0))
    variants = []
    for percent in percents:
        deadbands = {}
        for code, signal in signals.items():
            if signal.low_limit is None or signal.high_limit is None:
                deadbands[code] = 0.0  # no range to take a percent of: not filtered
            else:
                deadbands[code] = percent / 100 * (signal.high_limit - signal.low_limit)
        kept = _kept(changes, signals, deadbands)
        variants.append({"deadband_percent": percent, "rows": kept,
                         "saved_percent": round(100 * (1 - kept / kept_without), 1)})
    return {
        "simulated_seconds": simulated_seconds,
        "tick_seconds": tick_seconds,
        "process_values": len(signals),
        "changes": len(changes),
        "rows_without_deadband": kept_without,
        "deadbands": variants,
    }


def _kept(changes: list[tuple[str, dt.datetime, float]], signals: dict[str, PlantSignal],
          deadbands: dict[str, float]) -> int:
    bindings = {code: Binding(signal, "simulator", code, deadbands[code])
                for code, signal in signals.items()}
    conditioner = Conditioner()
    rows = Rows()
    for start in range(0, len(changes), _CHUNK):
        conditioner.condition([Reading(bindings[code], ts, value)
                               for code, ts, value in changes[start:start + _CHUNK]], rows)
    return len(rows.process_value)
