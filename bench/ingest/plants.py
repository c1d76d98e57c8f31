"""The plants the benchmarks play: the sample plant, and a wider one for capacity runs.

The wider plant is the sample plant plus machines that carry only process values, so one
OPC UA server serves many nodes. Nothing here touches a database or a socket.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ingest.tagmap import PlantSignal
from transactional.plant_file import MachineDef, PlantDefinition, SignalDef, read_plant_file

WIDE_PREFIX = "BENCH-"


def sample_plant() -> PlantDefinition:
    return read_plant_file(Path(str(resources.files("mes") / "samples" / "plant.toml")))


def wide_plant(plant: PlantDefinition, machines: int, values_per_machine: int,
               ) -> PlantDefinition:
    """`plant` plus `machines` extra machines with `values_per_machine` process values each."""
    first = plant.machines[0]
    extra = [
        MachineDef(
            code=f"{WIDE_PREFIX}{m:03d}", name=f"Bench machine {m}", line=first.line,
            state_model=first.state_model,
            signals=[SignalDef(code=f"{WIDE_PREFIX}{m:03d}.pv{v:03d}", name=f"Value {v}",
                               kind="process_value", low_limit=0.0, high_limit=100.0)
                     for v in range(1, values_per_machine + 1)])
        for m in range(1, machines + 1)]
    return plant.model_copy(update={"machines": [*plant.machines, *extra]})


def process_value_codes(plant: PlantDefinition, *, wide_only: bool = False) -> list[str]:
    return [signal.code for machine in plant.machines for signal in machine.signals
            if signal.kind == "process_value"
            and (not wide_only or machine.code.startswith(WIDE_PREFIX))]


def offline_signals(plant: PlantDefinition) -> dict[str, PlantSignal]:
    """The plant's process values as the collector would know them, with made-up ids."""
    signals: dict[str, PlantSignal] = {}
    for equipment_id, machine in enumerate(plant.machines, start=1):
        for signal in machine.signals:
            if signal.kind == "process_value":
                signals[signal.code] = PlantSignal(
                    len(signals) + 1, signal.code, "process_value", equipment_id,
                    machine.code, signal.low_limit, signal.high_limit)
    return signals
