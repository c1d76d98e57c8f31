"""Tag maps: the simulator's own map binds every signal once; each kind of mistake is refused.

Signals come from the sample plant file (no database): the same codes, kinds and limits
that `mes plant load` would put in ingest_api.signal_map.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.simulator.tagmap import node_id, simulator_tag_map
from ingest.tagmap import (
    MAX_REGISTERS_PER_READ,
    PlantSignal,
    TagMap,
    TagMapError,
    read_tag_map,
)
from tests.conftest import SAMPLE_PLANT
from transactional.plant_file import PlantDefinition, read_plant_file

# A process value the sample plant lacks: one without limits, for deadband_percent.
UNLIMITED = "PRESS-1.pressure"


@pytest.fixture(scope="module")
def plant() -> PlantDefinition:
    return read_plant_file(SAMPLE_PLANT)


@pytest.fixture(scope="module")
def signals(plant: PlantDefinition) -> dict[str, PlantSignal]:
    """Signal code -> PlantSignal, ids numbered in plant-file order from 1."""
    found: dict[str, PlantSignal] = {}
    for equipment_id, machine in enumerate(plant.machines, start=101):
        for signal in machine.signals:
            found[signal.code] = PlantSignal(len(found) + 1, signal.code, signal.kind,
                                             equipment_id, machine.code, signal.low_limit,
                                             signal.high_limit)
    found[UNLIMITED] = PlantSignal(len(found) + 1, UNLIMITED, "process_value", 101, "PRESS-1")
    return found


def _read(tmp_path: Path, text: str, signals: dict[str, PlantSignal]) -> TagMap:
    path = tmp_path / "tagmap.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_tag_map(path, signals)


def _refusal(tmp_path: Path, text: str, signals: dict[str, PlantSignal]) -> list[str]:
    with pytest.raises(TagMapError) as refused:
        _read(tmp_path, text, signals)
    return refused.value.problems


def _plant_codes(plant: PlantDefinition) -> Counter[str]:
    return Counter(signal.code for machine in plant.machines for signal in machine.signals)


# --- the simulator's map -------------------------------------------------------------

def test_simulator_opcua_map_binds_every_signal_once(
        tmp_path: Path, plant: PlantDefinition, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, simulator_tag_map(plant, protocols=("opcua",)), signals)

    assert tag_map.modbus == ()
    [source] = tag_map.opcua
    assert source.source.endpoint == "opc.tcp://127.0.0.1:4840"
    assert Counter(b.signal.code for b in tag_map.bindings) == _plant_codes(plant)
    assert tag_map.signal_count == 48
    for node, binding in source.nodes.items():
        assert node == binding.address == node_id(binding.signal.code)
        assert binding.source == "simulator-opcua"
        assert binding.deadband == 0.0
    # Each machine's fault code node explains that machine's state signal.
    assert {node: signal.code for node, signal in source.reason_nodes.items()} == {
        node_id(f"{m.code}.fault_code"): f"{m.code}.state" for m in plant.machines}


@pytest.mark.parametrize("word_order", ["big", "little"])
def test_simulator_modbus_map_reads_each_device_in_one_request(
        tmp_path: Path, plant: PlantDefinition, signals: dict[str, PlantSignal],
        word_order: str) -> None:
    tag_map = _read(tmp_path, simulator_tag_map(plant, protocols=("modbus",),
                                                word_order=word_order), signals)

    assert tag_map.opcua == ()
    assert Counter(b.signal.code for b in tag_map.bindings) == _plant_codes(plant)
    assert tag_map.signal_count == 48
    assert [d.device.name for d in tag_map.modbus] == [m.code for m in plant.machines]
    for device in tag_map.modbus:
        # state 0, fault code 1, good 2-3, reject 4-5, three float32 at 6-11: one read
        [read] = device.reads
        assert (read.function, read.start, read.count) == ("holding", 0, 12)
        code = device.device.name
        layout = {f.binding.signal.code: (f.offset, f.type, f.reason_offset) for f in read.fields}
        assert layout == {
            f"{code}.state": (0, "uint16", 1),
            f"{code}.good": (2, "uint32", None),
            f"{code}.reject": (4, "uint32", None),
            f"{code}.temperature": (6, "float32", None),
            f"{code}.vibration": (8, "float32", None),
            f"{code}.speed": (10, "float32", None),
        }
        assert {(f.word_order, f.byte_order) for f in read.fields} == {(word_order, "big")}
        counters = {f.binding.signal.kind: f.binding.counter_modulus for f in read.fields
                    if f.binding.signal.kind in ("good_count", "reject_count")}
        assert counters == {"good_count": 2**32, "reject_count": 2**32}


def test_simulator_map_of_both_protocols_is_refused_signal_by_signal(
        tmp_path: Path, plant: PlantDefinition, signals: dict[str, PlantSignal]) -> None:
    # The generator maps each signal through both protocols; the collector takes each
    # signal from one address, so every signal is named as mapped twice.
    problems = _refusal(tmp_path, simulator_tag_map(plant), signals)

    assert len(problems) == 48
    for code in _plant_codes(plant):
        [problem] = [p for p in problems if p.startswith(f"signal {code!r} ")]
        assert f"is mapped 2 times (simulator-opcua {node_id(code)}, " in problem


# --- conditioning settings -----------------------------------------------------------

def test_counter_modulus_follows_the_register_width(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, """
        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        registers = [
          { signal = "PRESS-1.good", address = 0, type = "uint16" },
          { signal = "PRESS-1.reject", address = 1, type = "uint32" },
        ]
        """, signals)
    modulus = {b.signal.code: b.counter_modulus for b in tag_map.bindings}
    assert modulus == {"PRESS-1.good": 2**16, "PRESS-1.reject": 2**32}


def test_percent_deadband_becomes_units_of_the_signal_range(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, """
        [[opcua]]
        name = "line-opcua"
        endpoint = "opc.tcp://plc.local:4840"
        nodes = [
          { signal = "PRESS-1.temperature", node = "ns=2;s=T1", deadband_percent = 5.0 },
          { signal = "OVEN-1.temperature", node = "ns=2;s=T2", deadband_percent = 0.5 },
          { signal = "PRESS-1.speed", node = "ns=2;s=S1", deadband = 1.5 },
          { signal = "PRESS-1.vibration", node = "ns=2;s=V1" },
        ]
        [[modbus]]
        name = "PRESS-2"
        host = "10.0.0.12"
        registers = [
          { signal = "PRESS-2.vibration", address = 0, type = "float32", deadband_percent = 10 },
        ]
        """, signals)
    deadbands = {b.signal.code: b.deadband for b in tag_map.bindings}
    assert deadbands == pytest.approx({
        "PRESS-1.temperature": 4.0,   # 5 % of 10..90 degC
        "OVEN-1.temperature": 1.15,   # 0.5 % of 20..250 degC
        "PRESS-1.speed": 1.5,         # absolute, as given
        "PRESS-1.vibration": 0.0,     # none: every change is kept
        "PRESS-2.vibration": 2.5,     # 10 % of 0..25 mm/s
    })


def test_scale_offset_and_orders_reach_the_read_plan(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, """
        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        word_order = "little"
        byte_order = "little"

        [[modbus.registers]]
        signal = "PRESS-1.temperature"
        address = 10
        type = "int16"
        scale = 0.1
        offset = -40.0

        [[modbus.registers]]
        signal = "PRESS-1.speed"
        address = 11
        type = "float32"
        word_order = "big"
        """, signals)
    [device] = tag_map.modbus
    [read] = device.reads
    assert (read.start, read.count) == (10, 3)
    temperature, speed = read.fields
    assert (temperature.offset, temperature.scale, temperature.value_offset) == (0, 0.1, -40.0)
    assert (temperature.word_order, temperature.byte_order) == ("little", "little")
    assert (speed.offset, speed.word_order, speed.byte_order) == (1, "big", "little")


def test_reads_split_at_gaps_functions_and_the_request_limit(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    many = {f"M.pv{i}": PlantSignal(1000 + i, f"M.pv{i}", "process_value", 900, "M")
            for i in range(68)}
    registers = "\n".join(
        f'  {{ signal = "M.pv{i}", address = {2 * i}, type = "float32" }},' for i in range(64))
    registers += """
          { signal = "M.pv64", address = 200, type = "uint16" },
          { signal = "M.pv65", address = 202, type = "uint16" },
          { signal = "M.pv66", address = 203, type = "int32" },
          { signal = "M.pv67", address = 0, type = "float32", function = "input" },
        """
    tag_map = _read(tmp_path, f"""
        [[modbus]]
        name = "M"
        host = "10.0.0.20"
        registers = [
{registers}
        ]
        """, {**signals, **many})
    [device] = tag_map.modbus
    plan = [(r.function, r.start, r.count, len(r.fields)) for r in device.reads]
    assert plan == [
        ("holding", 0, 124, 62),     # 64 floats are 128 registers: more than one request
        ("holding", 124, 4, 2),
        ("holding", 200, 1, 1),      # 201 is not mapped: not read
        ("holding", 202, 3, 2),
        ("input", 0, 2, 1),
    ]
    assert all(r.count <= MAX_REGISTERS_PER_READ for r in device.reads)


@pytest.mark.parametrize("reason_address", [10, 200])
def test_a_reason_register_apart_from_its_state_is_refused(
        tmp_path: Path, signals: dict[str, PlantSignal], reason_address: int) -> None:
    # Read apart, a state and its reason could come from different moments; read together,
    # the request would cover unmapped registers (or more than 125 of them).
    at = reason_address
    text = f"""
        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        registers = [
          {{ signal = "PRESS-1.state", address = 5, type = "uint16", reason_address = {at} }},
        ]
        """
    with pytest.raises(TagMapError) as refused:
        _read(tmp_path, text, signals)
    [problem] = refused.value.problems
    assert "modbus[PRESS-1].registers[PRESS-1.state]" in problem
    assert f"reason_address {reason_address} must be the register right before or after " \
           "the state (4 or 6)" in problem


@pytest.mark.parametrize("reason_address", [4, 6])
def test_a_reason_register_next_to_its_state_is_read_with_it(
        tmp_path: Path, signals: dict[str, PlantSignal], reason_address: int) -> None:
    at = reason_address
    [device] = _read(tmp_path, f"""
        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        registers = [
          {{ signal = "PRESS-1.state", address = 5, type = "uint16", reason_address = {at} }},
        ]
        """, signals).modbus
    [read] = device.reads
    assert (read.start, read.count) == (min(5, reason_address), 2)
    [field] = read.fields
    assert field.reason_offset == reason_address - read.start
    assert field.offset == 5 - read.start


# --- refusals ------------------------------------------------------------------------

OPCUA = """
    [[opcua]]
    name = "line-opcua"
    endpoint = "opc.tcp://plc.local:4840"
    nodes = [
      {nodes}
    ]
    """

MODBUS = """
    [[modbus]]
    name = "PRESS-1"
    host = "10.0.0.11"
    registers = [
      {registers}
    ]
    """


def opcua(*nodes: str) -> str:
    return OPCUA.replace("{nodes}", ",\n      ".join(nodes))


def modbus(*registers: str) -> str:
    return MODBUS.replace("{registers}", ",\n      ".join(registers))


@dataclass(frozen=True)
class Refusal:
    """A tag map, and the problems expected as (where, why) fragments, one pair each."""

    text: str
    problems: tuple[tuple[str, str], ...]


STATE = '{ signal = "PRESS-1.state", address = 0, type = "uint16", reason_address = 1 }'
GOOD = '{ signal = "PRESS-1.good", address = 2, type = "uint32" }'
TEMPERATURE = '{ signal = "PRESS-1.temperature", address = 6, type = "float32" }'
TEMPERATURE_NODE = '{ signal = "PRESS-1.temperature", node = "ns=2;s=Press1.Temp" }'
REGS = "modbus[PRESS-1].registers"
NODES = "opcua[line-opcua].nodes"
FIELDS = "modbus.[PRESS-1].registers"

REFUSALS: dict[str, Refusal] = {
    "unknown signal": Refusal(
        modbus(STATE, '{ signal = "PRESS-9.speed", address = 6, type = "float32" }'),
        ((f"{REGS}[PRESS-9.speed]", "unknown signal 'PRESS-9.speed'; the plant model has "
                                    "no such signal"),)),
    "unknown signal on opcua": Refusal(
        opcua('{ signal = "press-1.state", node = "ns=2;s=S" }'),
        ((f"{NODES}[press-1.state]", "unknown signal 'press-1.state'"),)),
    "signal mapped twice in one device": Refusal(
        modbus(TEMPERATURE, '{ signal = "PRESS-1.temperature", address = 8, type = "float32" }'),
        (("signal 'PRESS-1.temperature'", "is mapped 2 times (PRESS-1 holding:6, "
                                          "PRESS-1 holding:8)"),)),
    "signal mapped on opcua and modbus": Refusal(
        opcua(TEMPERATURE_NODE) + modbus(TEMPERATURE),
        (("signal 'PRESS-1.temperature'", "is mapped 2 times (line-opcua ns=2;s=Press1.Temp, "
                                          "PRESS-1 holding:6)"),)),
    "duplicate node id": Refusal(
        opcua(TEMPERATURE_NODE, '{ signal = "PRESS-1.speed", node = "ns=2;s=Press1.Temp" }'),
        (("opcua[line-opcua]", "node 'ns=2;s=Press1.Temp' is mapped 2 times"),)),
    "reason node is a value node": Refusal(
        opcua(TEMPERATURE_NODE,
              '{ signal = "PRESS-1.state", node = "ns=2;s=S", '
              'reason_node = "ns=2;s=Press1.Temp" }'),
        (("opcua[line-opcua]", "node 'ns=2;s=Press1.Temp' is mapped 2 times"),)),
    "duplicate source name": Refusal(
        opcua(TEMPERATURE_NODE).replace('"line-opcua"', '"PRESS-1"') + modbus(STATE),
        (("source name 'PRESS-1'", "is used 2 times"),)),
    "same endpoint twice": Refusal(
        opcua(TEMPERATURE_NODE)
        + opcua('{ signal = "PRESS-2.speed", node = "ns=2;s=P2" }').replace(
            '"line-opcua"', '"line-opcua-2"'),
        (("opcua endpoint 'opc.tcp://plc.local:4840'", "is listed 2 times"),)),
    "same modbus host port unit twice": Refusal(
        modbus(STATE) + modbus(TEMPERATURE).replace('"PRESS-1"', '"PRESS-1-again"', 1),
        (("modbus device 10.0.0.11:502 unit 1", "is listed 2 times"),)),
    "uint32 at 2 overlaps uint16 at 3": Refusal(
        modbus(GOOD, '{ signal = "PRESS-1.state", address = 3, type = "uint16" }'),
        ((f"{REGS}[PRESS-1.state]", "holding register 3 is already used by PRESS-1.good "
                                    "at 2"),)),
    "reason address overlaps a value": Refusal(
        modbus('{ signal = "PRESS-1.state", address = 1, type = "uint16", reason_address = 2 }',
               GOOD),
        ((f"{REGS}[PRESS-1.good]", "holding register 2 is already used by the reason of "
                                   "PRESS-1.state at 2"),)),
    "reason address is the state register": Refusal(
        modbus('{ signal = "PRESS-1.state", address = 0, type = "uint16", reason_address = 0 }'),
        ((f"{REGS}[PRESS-1.state]", "holding register 0 is already used"),)),
    "float32 runs past 65535": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 65535, type = "float32" }'),
        ((f"{REGS}[PRESS-1.temperature]", "float32 at 65535 runs past register 65535"),)),
    "address beyond 65535": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 65536, type = "uint16" }'),
        ((f"{FIELDS}.[PRESS-1.temperature].address", "less than or equal to 65535"),)),
    "float32 for a counter": Refusal(
        modbus('{ signal = "PRESS-1.good", address = 2, type = "float32" }'),
        ((f"{REGS}[PRESS-1.good]", "'PRESS-1.good' is a counter; read it as uint16 or "
                                   "uint32, not float32"),)),
    "int16 for a counter": Refusal(
        modbus('{ signal = "PRESS-1.reject", address = 4, type = "int16" }'),
        ((f"{REGS}[PRESS-1.reject]", "is a counter; read it as uint16 or uint32, not int16"),)),
    "float32 for a state": Refusal(
        modbus('{ signal = "PRESS-1.state", address = 0, type = "float32" }'),
        ((f"{REGS}[PRESS-1.state]", "'PRESS-1.state' is a machine state; read it as an "
                                    "integer type, not float32"),)),
    "unknown type float128": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 6, type = "float128" }'),
        ((f"{FIELDS}.[PRESS-1.temperature].type", "'float128' is not allowed; input should "
                                                  "be 'uint16', 'int16', 'uint32'"),)),
    "heartbeat without a deadband": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 6, type = "float32", '
               'heartbeat_seconds = 10.0 }'),
        ((f"{REGS}[PRESS-1.temperature]", "heartbeat_seconds applies to a value kept on "
                                          "change only; give a deadband"),)),
    "scale on a counter": Refusal(
        modbus('{ signal = "PRESS-1.good", address = 2, type = "uint32", scale = 2.0 }'),
        ((f"{REGS}[PRESS-1.good]", "scale and offset apply to process values only, and "
                                   "'PRESS-1.good' is a good_count signal"),)),
    "offset on a state": Refusal(
        modbus('{ signal = "PRESS-1.state", address = 0, type = "uint16", offset = 1.0 }'),
        ((f"{REGS}[PRESS-1.state]", "scale and offset apply to process values only"),)),
    "scale 0": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 6, type = "int16", scale = 0.0 }'),
        ((f"{REGS}[PRESS-1.temperature]", "scale 0 would turn every reading into the "
                                          "offset"),)),
    "deadband on a counter": Refusal(
        opcua('{ signal = "PRESS-1.good", node = "ns=2;s=G", deadband = 1.0 }'),
        ((f"{NODES}[PRESS-1.good]", "a deadband applies to process values only, and "
                                    "'PRESS-1.good' is a good_count signal"),)),
    "deadband_percent on a state": Refusal(
        modbus('{ signal = "PRESS-1.state", address = 0, type = "uint16", '
               'deadband_percent = 1.0 }'),
        ((f"{REGS}[PRESS-1.state]", "a deadband applies to process values only, and "
                                    "'PRESS-1.state' is a state signal"),
         (f"{REGS}[PRESS-1.state]", "deadband_percent needs the signal's low_limit and "
                                    "high_limit"))),
    "deadband and deadband_percent": Refusal(
        opcua('{ signal = "PRESS-1.temperature", node = "ns=2;s=T", deadband = 1.0, '
              'deadband_percent = 2.0 }'),
        (("opcua.[line-opcua].nodes.[PRESS-1.temperature]",
          "give deadband or deadband_percent, not both"),)),
    "deadband_percent without limits": Refusal(
        opcua(f'{{ signal = "{UNLIMITED}", node = "ns=2;s=P", deadband_percent = 2.0 }}'),
        ((f"{NODES}[{UNLIMITED}]", "deadband_percent needs the signal's low_limit and "
                                   "high_limit in the plant model"),)),
    "reason_node on a process value": Refusal(
        opcua('{ signal = "PRESS-1.speed", node = "ns=2;s=S", reason_node = "ns=2;s=F" }'),
        ((f"{NODES}[PRESS-1.speed]", "reason_node belongs to a state signal, and "
                                     "'PRESS-1.speed' is a process_value signal"),)),
    "reason_address on a counter": Refusal(
        modbus('{ signal = "PRESS-1.good", address = 2, type = "uint32", reason_address = 1 }'),
        ((f"{REGS}[PRESS-1.good]", "reason_address belongs to a state signal, and "
                                   "'PRESS-1.good' is a good_count signal"),)),
    "malformed node id": Refusal(
        opcua('{ signal = "PRESS-1.speed", node = "Press1.Speed" }'),
        ((f"{NODES}[PRESS-1.speed]", "'Press1.Speed' is not an OPC UA node id"),)),
    "malformed reason node id": Refusal(
        opcua('{ signal = "PRESS-1.state", node = "ns=2;s=S", reason_node = "ns=x;s=F" }'),
        ((f"{NODES}[PRESS-1.state]", "'ns=x;s=F' is not an OPC UA node id"),)),
    "http endpoint": Refusal(
        opcua(TEMPERATURE_NODE).replace("opc.tcp://", "http://"),
        (("opcua.[line-opcua].endpoint", "String should match pattern"),)),
    "missing signal": Refusal(
        opcua('{ node = "ns=2;s=S" }'),
        (("opcua.[line-opcua].nodes.[0].signal", "required field is missing"),)),
    "missing address": Refusal(
        modbus('{ signal = "PRESS-1.temperature", type = "float32" }'),
        ((f"{FIELDS}.[PRESS-1.temperature].address", "required field is missing"),)),
    "missing type": Refusal(
        modbus('{ signal = "PRESS-1.temperature", address = 6 }'),
        ((f"{FIELDS}.[PRESS-1.temperature].type", "required field is missing"),)),
    "missing endpoint": Refusal(
        opcua(TEMPERATURE_NODE).replace('endpoint = "opc.tcp://plc.local:4840"', ""),
        (("opcua.[line-opcua].endpoint", "required field is missing"),)),
    "missing nodes": Refusal(
        '[[opcua]]\nname = "line-opcua"\nendpoint = "opc.tcp://plc.local:4840"\n',
        (("opcua.[line-opcua].nodes", "required field is missing"),)),
    "missing host": Refusal(
        modbus(TEMPERATURE).replace('host = "10.0.0.11"', ""),
        (("modbus.[PRESS-1].host", "required field is missing"),)),
    "typo adress": Refusal(
        modbus('{ signal = "PRESS-1.temperature", adress = 6, type = "float32" }'),
        ((f"{FIELDS}.[PRESS-1.temperature].adress", "unknown field"),
         (f"{FIELDS}.[PRESS-1.temperature].address", "required field is missing"))),
    "typo in a table name": Refusal(
        opcua(TEMPERATURE_NODE) + '[[modbuss]]\nname = "x"\n',
        (("modbuss", "unknown field"),)),
    "empty file": Refusal(
        "",
        (("(file)", "no [[opcua]], [[modbus]] or [[mqtt]] source: nothing to collect"),)),
    "only comments": Refusal(
        "# the plant's tag map\n",
        (("(file)", "nothing to collect"),)),
    "invalid TOML": Refusal(
        '[[opcua]]\nname = "line-opcua"\nendpoint = = "opc.tcp://plc.local:4840"\n',
        (("TOML syntax", "line 3"),)),
    "poll_interval_ms too short": Refusal(
        modbus(TEMPERATURE).replace('host = "10.0.0.11"', 'host = "10.0.0.11"\n'
                                                          "poll_interval_ms = 5"),
        (("modbus.[PRESS-1].poll_interval_ms", "greater than or equal to 10"),)),
    "poll_interval_ms too long": Refusal(
        modbus(TEMPERATURE).replace('host = "10.0.0.11"', 'host = "10.0.0.11"\n'
                                                          "poll_interval_ms = 3600001"),
        (("modbus.[PRESS-1].poll_interval_ms", "less than or equal to 3600000"),)),
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_bad_tag_map_is_refused_naming_the_key_and_why(
        tmp_path: Path, signals: dict[str, PlantSignal], refusal: Refusal) -> None:
    problems = _refusal(tmp_path, refusal.text, signals)

    for where, why in refusal.problems:
        assert [p for p in problems if where in p and why in p], (where, why, problems)
    assert len(problems) == len(refusal.problems), problems


@pytest.mark.parametrize(("text", "count"), [
    (modbus(STATE, GOOD, TEMPERATURE), 3),
    (opcua(TEMPERATURE_NODE, '{ signal = "PRESS-1.state", node = "ns=2;s=S", '
                             'reason_node = "ns=2;s=F" }'), 2),
    (opcua(TEMPERATURE_NODE) + modbus(STATE, GOOD), 3),
], ids=["modbus", "opcua", "both"])
def test_the_refusal_snippets_are_valid_without_their_mistake(
        tmp_path: Path, signals: dict[str, PlantSignal], text: str, count: int) -> None:
    # The building blocks of the refusals above are fine on their own, so each refusal
    # comes from the one mistake it adds.
    assert _read(tmp_path, text, signals).signal_count == count


def test_every_problem_of_a_file_is_listed_at_once(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    path = tmp_path / "tagmap.toml"
    path.write_text(textwrap.dedent("""
        [[opcua]]
        name = "line-opcua"
        endpoint = "opc.tcp://plc.local:4840"
        nodes = [
          { signal = "PRESS-1.temperature", node = "Press1.Temp" },
          { signal = "PRESS-9.state", node = "ns=2;s=S9" },
        ]

        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        registers = [
          { signal = "PRESS-1.good", address = 2, type = "float32" },
          { signal = "PRESS-1.reject", address = 3, type = "uint16", deadband = 1.0 },
          { signal = "PRESS-1.temperature", address = 6, type = "float32" },
        ]
        """), encoding="utf-8")
    with pytest.raises(TagMapError) as refused:
        read_tag_map(path, signals)

    problems = refused.value.problems
    assert len(problems) == 6, problems
    assert any("Press1.Temp' is not an OPC UA node id" in p for p in problems)
    assert any("unknown signal 'PRESS-9.state'" in p for p in problems)
    assert any("[PRESS-1.good]: 'PRESS-1.good' is a counter" in p for p in problems)
    assert any("[PRESS-1.reject]: holding register 3 is already used" in p for p in problems)
    assert any("[PRESS-1.reject]: a deadband applies to process values only" in p
               for p in problems)
    assert any("signal 'PRESS-1.temperature' is mapped 2 times" in p for p in problems)
    # The message a plant engineer sees names the file and every problem, one a line.
    message = str(refused.value)
    assert message.startswith(f"{path}: tag map rejected, the collector did not start:\n")
    assert message.count("\n  - ") == 6
    assert refused.value.path == str(path)


def test_every_field_problem_of_a_file_is_listed_at_once(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    problems = _refusal(tmp_path, """
        [[opcua]]
        name = "line-opcua"
        endpoint = "http://plc.local:4840"
        nodes = [{ signal = "PRESS-1.speed" }]

        [[modbus]]
        name = "PRESS-1"
        host = "10.0.0.11"
        poll_interval_ms = 0
        registers = [{ signal = "PRESS-1.good", adress = 2, type = "uint64" }]
        """, signals)
    assert len(problems) == 6, problems
    for fragment in ("opcua.[line-opcua].endpoint: String should match pattern",
                     "opcua.[line-opcua].nodes.[PRESS-1.speed].node: required field",
                     "modbus.[PRESS-1].poll_interval_ms: Input should be greater",
                     "registers.[PRESS-1.good].address: required field is missing",
                     "registers.[PRESS-1.good].adress: unknown field",
                     "registers.[PRESS-1.good].type: 'uint64' is not allowed"):
        assert [p for p in problems if fragment in p], (fragment, problems)


def test_an_unreadable_file_is_refused(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    missing = tmp_path / "no-such-tagmap.toml"
    with pytest.raises(TagMapError) as refused:
        read_tag_map(missing, signals)
    assert refused.value.problems == ["cannot read the file: No such file or directory"]
    assert str(missing) in str(refused.value)


def test_a_file_that_is_not_utf8_is_refused(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    path = tmp_path / "tagmap.toml"
    path.write_bytes(b'[[opcua]]\nname = "L\xe4nge"\n')
    with pytest.raises(TagMapError) as refused:
        read_tag_map(path, signals)
    [problem] = refused.value.problems
    assert problem.startswith("not UTF-8 text")


def test_deadband_0_keeps_changes_only_and_the_device_heartbeat_is_the_default(
        tmp_path: Path, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, """
[[modbus]]
name = "press"
host = "127.0.0.1"
heartbeat_seconds = 60
registers = [
  { signal = "PRESS-1.temperature", address = 6, type = "float32", deadband = 0 },
  { signal = "PRESS-1.speed", address = 8, type = "float32", deadband = 0.5, \
heartbeat_seconds = 5 },
  { signal = "PRESS-1.vibration", address = 10, type = "float32" },
]
""", signals)
    bindings = {b.signal.code: (b.deadband, b.changes_only, b.heartbeat_seconds)
                for b in tag_map.bindings}
    assert bindings == {"PRESS-1.temperature": (0.0, True, 60.0),
                        "PRESS-1.speed": (0.5, True, 5.0),
                        "PRESS-1.vibration": (0.0, False, None)}


# --- MQTT sources ---------------------------------------------------------------------

def test_the_simulators_sparkplug_map_binds_every_signal_once_per_device(
        tmp_path: Path, plant: PlantDefinition, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, simulator_tag_map(plant, protocols=("sparkplug",),
                                                mqtt_port=1884), signals)
    [source] = tag_map.mqtt
    assert (source.source.host, source.source.port) == ("127.0.0.1", 1884)
    assert Counter(b.signal.code for b in tag_map.bindings) == _plant_codes(plant)
    assert [t.device for t in source.sparkplug] == [m.code for m in plant.machines]
    press = source.sparkplug[0]
    assert press.source == "simulator-sparkplug:open-mes/simulator/PRESS-1"
    assert press.metrics["Temperature"].signal.code == "PRESS-1.temperature"
    assert press.reason_metrics == {"FaultCode": signals["PRESS-1.state"]}
    assert source.gap_sources[0] == press.source


MQTT = """
    [[mqtt]]
    name = "iiot"
    host = "10.0.0.30"
    client_id = "mes-1"
    username = "mes"
    password_env = "MES_TEST_MQTT_PASSWORD"

    [[mqtt.sparkplug]]
    group = "Plant1"
    node = "EDGE-1"
    device = "PRESS-1"
    metrics = [
      { signal = "PRESS-1.state", metric = "State", reason_metric = "Fault" },
      { signal = "PRESS-1.temperature", metric = "Temp", deadband = 0.5 },
    ]

    [[mqtt.json]]
    topic = "sensors/paint-1"
    timestamp = "ts"
    timestamp_unit = "s"
    values = [{ signal = "PAINT-1.temperature", path = "data.oven[1].value" }]
"""


def test_an_mqtt_source_with_sparkplug_and_json_binds_its_signals(
        tmp_path: Path, signals: dict[str, PlantSignal],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_TEST_MQTT_PASSWORD", "s3cret")
    [source] = _read(tmp_path, MQTT, signals).mqtt
    assert source.password == "s3cret"
    assert source.source.port == 1883 and source.source.receive_maximum == 10_000
    [json_topic] = source.json
    assert json_topic.timestamp == ("ts",) and json_topic.timestamp_unit == "s"
    assert json_topic.values[0][0] == ("data", "oven", 1, "value")
    assert source.sparkplug[0].metrics["Temp"].deadband == 0.5


@pytest.mark.parametrize(("change", "expected"), [
    (("metric = \"Temp\", deadband", "metric = \"State\", deadband"),
     "metric 'State' is mapped 2 times"),
    (("reason_metric = \"Fault\"", "reason_metric = \"Fault\" }, { signal = "
      "\"PRESS-1.good\", metric = \"G\", reason_metric = \"F2\""),
     "reason_metric belongs to a state signal"),
    (("node = \"EDGE-1\"", "node = \"EDGE/1\""), "String should match pattern"),
    (("topic = \"sensors/paint-1\"", "topic = \"sensors/+\""), "String should match pattern"),
    (("path = \"data.oven[1].value\"", "path = \"data..oven\""), "String should match pattern"),
    (("client_id = \"mes-1\"", "client_id = \"mes-1\"\ntls = false\nca_file = \"ca.pem\""),
     "ca_file, cert_file and key_file need tls = true"),
    (("PAINT-1.temperature", "PAINT-1.nothing"), "unknown signal 'PAINT-1.nothing'"),
    (("password_env = \"MES_TEST_MQTT_PASSWORD\"", "password_env = \"MES_NOT_SET_ANYWHERE\""),
     "no such environment variable is set"),
])
def test_mistakes_in_an_mqtt_source_are_refused_with_their_place(
        tmp_path: Path, signals: dict[str, PlantSignal], monkeypatch: pytest.MonkeyPatch,
        change: tuple[str, str], expected: str) -> None:
    monkeypatch.setenv("MES_TEST_MQTT_PASSWORD", "s3cret")
    assert change[0] in MQTT
    problems = _refusal(tmp_path, MQTT.replace(*change), signals)
    assert any(expected in problem for problem in problems), problems
    assert all(p.startswith("mqtt") for p in problems), problems


def test_two_collectors_may_not_share_a_session(
        tmp_path: Path, signals: dict[str, PlantSignal], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MES_TEST_MQTT_PASSWORD", "s3cret")
    second = MQTT.replace('name = "iiot"', 'name = "iiot-2"').replace("PRESS-1", "PRESS-2") \
        .replace("PAINT-1", "OVEN-1")
    problems = _refusal(tmp_path, MQTT + second, signals)
    assert problems == ["mqtt client_id 'mes-1' is used 2 times on 10.0.0.30:1883; each "
                        "collector needs a session of its own"]
