"""Writes the collector tag map (TOML) that points at the simulator's OPC UA and Modbus servers.

Node ids and register addresses come from `layout`, the same place the servers use. It
writes text only; parsing and checking a tag map is the collector's job (ingest/tagmap.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ingest.simulator.layout import (
    WordOrder,
    fault_code_signal,
    machine_signals,
    modbus_units,
    register_map,
)
from ingest.simulator.layout import word_order as checked_word_order
from ingest.simulator.opcua_server import NAMESPACE_URI, endpoint_url
from ingest.simulator.sparkplug_edge import metric_name
from transactional.plant_file import PlantDefinition

PROTOCOLS = ("opcua", "modbus", "sparkplug")
# Registered first on a fresh asyncua server, the simulator's namespace gets index 2.
NAMESPACE_INDEX = 2


def _string(text: str) -> str:
    """A TOML basic string."""
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _inline(fields: Iterable[tuple[str, str | int]]) -> str:
    parts = [f"{key} = {_string(value) if isinstance(value, str) else value}"
             for key, value in fields]
    return "{ " + ", ".join(parts) + " }"


def _array(entries: list[str]) -> str:
    return "[\n" + "".join(f"  {entry},\n" for entry in entries) + "]"


def node_id(signal_code: str) -> str:
    """The OPC UA node id (as text) under which the simulator serves a signal."""
    return f"ns={NAMESPACE_INDEX};s={signal_code}"


def simulator_tag_map(plant: PlantDefinition, host: str = "127.0.0.1", opcua_port: int = 4840,
                      modbus_port: int = 5020, word_order: WordOrder | str = "big",
                      publishing_interval_ms: int = 50, poll_interval_ms: int = 100,
                      protocols: Sequence[str] = ("opcua", "modbus"), mqtt_port: int = 1883,
                      mqtt_host: str | None = None,
                      sparkplug_group: str = "open-mes", sparkplug_node: str = "simulator",
                      client_id: str = "mes-collector") -> str:
    """Tag-map TOML mapping every signal of `plant` through the chosen protocols."""
    order = checked_word_order(word_order)
    unknown = [protocol for protocol in protocols if protocol not in PROTOCOLS]
    if unknown or not protocols:
        raise ValueError(f"protocols {list(protocols)!r}: choose from {list(PROTOCOLS)}")
    # Codes only in the comment: names are free text and could break out of it.
    sections = [f"# Tag map for the line simulator playing {plant.enterprise.code}, generated "
                f"from the plant file:\n# change that and generate it again rather than "
                f"editing here."]
    if len(set(protocols)) > 1:
        sections[0] += ("\n# Every signal is mapped through both protocols: a collector "
                        "reading both must be told\n# that a signal may come from two sources.")
    if "opcua" in protocols:
        sections.append(_opcua_section(plant, host, opcua_port, publishing_interval_ms))
    if "modbus" in protocols:
        sections.extend(_modbus_sections(plant, host, modbus_port, order, poll_interval_ms))
    if "sparkplug" in protocols:
        sections.append(_sparkplug_section(plant, mqtt_host or host, mqtt_port, sparkplug_group,
                                           sparkplug_node, client_id))
    return "\n\n".join(section for section in sections if section) + "\n"


def _opcua_section(plant: PlantDefinition, host: str, port: int,
                   publishing_interval_ms: int) -> str:
    nodes: list[str] = []
    for machine in plant.machines:
        for signal in machine.signals:
            fields: list[tuple[str, str | int]] = [("signal", signal.code),
                                                   ("node", node_id(signal.code))]
            if signal.kind == "state":
                fields.append(("reason_node", node_id(fault_code_signal(machine.code))))
            nodes.append(_inline(fields))
    if not nodes:
        return ""
    return "\n".join([
        "[[opcua]]",
        f"name = {_string('simulator-opcua')}",
        f"endpoint = {_string(endpoint_url(host, port))}",
        f"# namespace {NAMESPACE_URI}",
        f"publishing_interval_ms = {publishing_interval_ms}",
        # 0 asks the server to report every change as it happens, not at a sampling rate.
        "sampling_interval_ms = 0",
        f"nodes = {_array(nodes)}",
    ])


def _modbus_sections(plant: PlantDefinition, host: str, port: int, order: WordOrder,
                     poll_interval_ms: int) -> list[str]:
    units = modbus_units(plant)
    sections: list[str] = []
    for machine in plant.machines:
        layout = register_map(machine)
        fault = layout[fault_code_signal(machine.code)]
        registers: list[str] = []
        for signal in machine.signals:
            register = layout[signal.code]
            fields: list[tuple[str, str | int]] = [
                ("signal", signal.code), ("address", register.address),
                ("type", register.type)]
            if signal.kind == "state":
                fields.append(("reason_address", fault.address))
            registers.append(_inline(fields))
        if not registers:
            continue
        sections.append("\n".join([
            "[[modbus]]",
            f"name = {_string(machine.code)}",
            f"host = {_string(host)}",
            f"port = {port}",
            f"unit = {units[machine.code]}",
            f"poll_interval_ms = {poll_interval_ms}",
            "timeout_ms = 1000",
            f"word_order = {_string(order)}",
            f"registers = {_array(registers)}",
        ]))
    return sections


def _sparkplug_section(plant: PlantDefinition, host: str, port: int, group: str, node: str,
                       client_id: str) -> str:
    lines = ["[[mqtt]]", f"name = {_string('simulator-sparkplug')}", f"host = {_string(host)}",
             f"port = {port}", f"client_id = {_string(client_id)}"]
    for machine in plant.machines:
        served = {s.code: s for s in machine_signals(machine)}
        metrics: list[str] = []
        for signal in machine.signals:
            fields: list[tuple[str, str | int]] = [
                ("signal", signal.code), ("metric", metric_name(served[signal.code]))]
            if signal.kind == "state":
                fields.append(("reason_metric",
                               metric_name(served[fault_code_signal(machine.code)])))
            metrics.append(_inline(fields))
        if not metrics:
            continue
        lines += ["", "[[mqtt.sparkplug]]", f"group = {_string(group)}",
                  f"node = {_string(node)}", f"device = {_string(machine.code)}",
                  f"metrics = {_array(metrics)}"]
    return "\n".join(lines)
