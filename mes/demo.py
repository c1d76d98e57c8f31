"""The live part of `mes demo`: the line simulator, both collectors, and data arriving.

The first line of the plant is read over OPC UA and the others over Modbus, so both
collectors run. Everything runs in this process for a few seconds and then stops cleanly;
`mes simulate` and `mes collect` are the long-running versions.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ingest.collect import CollectorFiles, build, plant_signals, run
from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from ingest.store import machine_activity
from ingest.tagmap import PlantSignal, TagMap, TagMapFile, resolve
from mes.settings import get_settings
from transactional.plant_file import PlantDefinition


def demo_tag_map(plant: PlantDefinition, signals: dict[str, PlantSignal],
                 opcua_port: int, modbus_port: int) -> TagMap:
    """The simulator's tag map with the first line on OPC UA and the rest on Modbus."""
    raw: dict[str, Any] = tomllib.loads(simulator_tag_map(
        plant, opcua_port=opcua_port, modbus_port=modbus_port, protocols=("opcua", "modbus")))
    line_of = {machine.code: machine.line for machine in plant.machines}
    first_line = plant.machines[0].line

    def on_first_line(signal_code: str) -> bool:
        signal = signals.get(signal_code)
        return signal is not None and line_of.get(signal.equipment_code) == first_line

    for source in raw["opcua"]:
        source["nodes"] = [n for n in source["nodes"] if on_first_line(n["signal"])]
    raw["modbus"] = [device for device in raw["modbus"]
                     if not any(on_first_line(r["signal"]) for r in device["registers"])]
    return resolve("demo tag map", TagMapFile.model_validate(raw), signals)


async def live_demo(plant: PlantDefinition, url: str, directory: Path, seconds: float,
                    echo: Callable[[str], None], *, role: str | None,
                    speed: float = 20.0) -> None:
    files = CollectorFiles(directory)
    signals = plant_signals(url, files, role)
    started = dt.datetime.now(dt.UTC)
    async with Simulator(plant, seed=0, speed=speed, opcua_port=0, modbus_port=0) as simulator:
        assert simulator.opcua_port is not None and simulator.modbus_port is not None
        tag_map = demo_tag_map(plant, signals, simulator.opcua_port, simulator.modbus_port)
        echo(f"line simulator at x{speed:g}: OPC UA {simulator.opcua_endpoint} "
             f"({len(tag_map.opcua[0].nodes)} nodes), Modbus TCP port {simulator.modbus_port} "
             f"({len(tag_map.modbus)} devices); collecting for {seconds:g} s")
        collection = build(tag_map, url, files, spool_max_bytes=1 << 28,
                           flush_rows=get_settings().flush_rows, role=role)
        clock = time.monotonic()

        def show(status: dict[str, Any]) -> None:
            echo(f"  {time.monotonic() - clock:4.0f} s  received "
                 f"{status.get('received_per_second', 0):>7.0f}/s  written "
                 f"{status['rows_written']:>7} rows  queue {status['queue_depth']:>4}  "
                 f"spool {status['spool_rows']}  database {status['database']}")

        stop = asyncio.Event()
        collecting = asyncio.create_task(run(collection, stop, files, on_status=show))
        await asyncio.sleep(seconds)
        stop.set()
        await collecting
    with psycopg.connect(url) as conn:
        activity = machine_activity(conn, started)
    echo(f"\n{'machine':<10} {'state now':<14} {'changes':>7} {'good':>6} {'reject':>6} "
         f"{'samples':>8}")
    for code, state, changes, good, reject, samples in activity:
        echo(f"{code:<10} {state or '-':<14} {changes:>7} {good:>6} {reject:>6} {samples:>8}")
