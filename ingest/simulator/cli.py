"""`mes simulate`: plays a plant file's machines over OPC UA and Modbus until SIGINT or SIGTERM.

Optionally writes the matching collector tag map first. It runs the simulator only: no
collector, no database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from ingest.broker import BrokerAddress
from ingest.simulator.layout import modbus_units
from ingest.simulator.layout import word_order as checked_word_order
from ingest.simulator.runner import Simulator
from ingest.simulator.sparkplug_edge import SparkplugTarget
from ingest.simulator.tagmap import simulator_tag_map
from transactional.plant_file import PlantDefinition, read_plant_file

TAG_MAP_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "opcua": ("opcua",),
    "modbus": ("modbus",),
    "both": ("opcua", "modbus"),
    "sparkplug": ("sparkplug",),
}


def sparkplug_target(broker: str, group: str, node: str) -> SparkplugTarget:
    """HOST:PORT (or HOST, port 1883) and the Sparkplug ids; ValueError if malformed."""
    host, _, port_text = broker.rpartition(":") if ":" in broker else (broker, "", "1883")
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"MQTT broker {broker!r}: give HOST:PORT, e.g. 127.0.0.1:1883")
    for name, value in (("group", group), ("node", node)):
        if not value or any(char in value for char in "/+#"):
            raise ValueError(f"Sparkplug {name} {value!r}: give a name without / + or #")
    return SparkplugTarget(BrokerAddress(host, int(port_text)), group, node)


def simulate(plant: Path, opcua_port: int, modbus_port: int, seed: int, speed: float,
             word_order: str, counter_start: int, tag_map_out: Path | None,
             tag_map_protocol: str, sparkplug: SparkplugTarget | None = None) -> None:
    """Serve the plant until interrupted; port 0 picks a free port (the tag map shows it)."""
    if tag_map_protocol not in TAG_MAP_PROTOCOLS:
        raise ValueError(f"tag map protocol {tag_map_protocol!r}: choose one of "
                         f"{', '.join(TAG_MAP_PROTOCOLS)}")
    if tag_map_protocol == "sparkplug" and sparkplug is None:
        raise ValueError("a Sparkplug tag map needs the broker the simulator publishes to: "
                         "--sparkplug-broker HOST:PORT")
    for name, port in (("OPC UA", opcua_port), ("Modbus", modbus_port)):
        if not 0 <= port <= 65535:
            raise ValueError(f"{name} port {port}: give 1..65535, or 0 for any free port")
    definition = read_plant_file(plant)
    simulator = Simulator(definition, seed=seed, speed=speed, opcua_port=opcua_port,
                          modbus_port=modbus_port, word_order=checked_word_order(word_order),
                          counter_start=counter_start, sparkplug=sparkplug)
    asyncio.run(_serve(simulator, definition, tag_map_out, TAG_MAP_PROTOCOLS[tag_map_protocol]))


async def _serve(simulator: Simulator, plant: PlantDefinition, tag_map_out: Path | None,
                 protocols: tuple[str, ...]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with simulator:
            opcua_port = simulator.opcua_port
            modbus_port = simulator.modbus_port
            assert opcua_port is not None and modbus_port is not None
            if tag_map_out is not None:
                # Written once the servers listen, so a port 0 shows as the one bound.
                edge = simulator.sparkplug
                _write_atomically(tag_map_out, simulator_tag_map(
                    plant, opcua_port=opcua_port, modbus_port=modbus_port,
                    word_order=simulator.word_order,
                    protocols=protocols,
                    mqtt_host=edge.target.address.host if edge else None,
                    mqtt_port=edge.target.address.port if edge else 1883,
                    sparkplug_group=edge.target.group if edge else "open-mes",
                    sparkplug_node=edge.target.node if edge else "simulator"))
            print(_summary(simulator, plant, tag_map_out), flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _summary(simulator: Simulator, plant: PlantDefinition, tag_map_out: Path | None) -> str:
    units = modbus_units(plant)
    unit_range = f"units 1-{len(units)}" if units else "no units"
    line = (f"simulating {len(plant.machines)} machines of {plant.enterprise.code} "
            f"(seed {simulator.seed}, speed x{simulator.speed:g}): "
            f"OPC UA {simulator.opcua_endpoint}, "
            f"Modbus TCP {simulator.host}:{simulator.modbus_port} {unit_range}, "
            f"{simulator.word_order} word order")
    if simulator.sparkplug is not None:
        target = simulator.sparkplug.target
        line += (f", Sparkplug B to {target.address} as {target.group}/{target.node} "
                 f"(a device per machine)")
    if tag_map_out is not None:
        line += f"; tag map {tag_map_out}"
    return line + "; Ctrl+C stops"


def _write_atomically(path: Path, text: str) -> None:
    # A collector watching the file never reads half a tag map.
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
