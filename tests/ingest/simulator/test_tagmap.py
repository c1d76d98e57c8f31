"""The generated tag map: valid TOML naming every signal once per protocol, at the served place."""

from __future__ import annotations

import tomllib
from collections import Counter
from typing import Any

import pytest

from ingest.simulator.layout import fault_code_signal, register_map
from ingest.simulator.tagmap import simulator_tag_map
from tests.ingest.simulator.conftest import PlantMaker, machine
from transactional.plant_file import PlantDefinition


def test_both_protocols_name_every_signal_once_each(plant: PlantDefinition) -> None:
    text = simulator_tag_map(plant, host="10.0.0.5", opcua_port=4841, modbus_port=5021,
                             word_order="little", publishing_interval_ms=25,
                             poll_interval_ms=250)
    parsed = tomllib.loads(text)
    signals = [s for m in plant.machines for s in m.signals]
    codes = Counter(s.code for s in signals)

    [opcua] = parsed["opcua"]
    assert opcua["name"] == "simulator-opcua"
    assert opcua["endpoint"] == "opc.tcp://10.0.0.5:4841"
    assert opcua["publishing_interval_ms"] == 25 and opcua["sampling_interval_ms"] == 0
    assert Counter(node["signal"] for node in opcua["nodes"]) == codes
    for node in opcua["nodes"]:
        assert node["node"] == f"ns=2;s={node['signal']}"
    states = {s.code: s for s in signals if s.kind == "state"}
    reasons = {node["signal"]: node["reason_node"] for node in opcua["nodes"]
               if "reason_node" in node}
    assert reasons == {code: f"ns=2;s={code.split('.')[0]}.fault_code" for code in states}

    devices = parsed["modbus"]
    assert [d["name"] for d in devices] == [m.code for m in plant.machines]
    assert [d["unit"] for d in devices] == list(range(1, len(plant.machines) + 1))
    seen: Counter[str] = Counter()
    for device, definition in zip(devices, plant.machines, strict=True):
        assert (device["host"], device["port"]) == ("10.0.0.5", 5021)
        assert device["word_order"] == "little" and device["poll_interval_ms"] == 250
        assert device["timeout_ms"] == 1000
        layout = register_map(definition)
        for entry in device["registers"]:
            seen[entry["signal"]] += 1
            register = layout[entry["signal"]]
            assert (entry["address"], entry["type"]) == (register.address, register.type)
            if entry["signal"] in states:
                assert entry["reason_address"] == layout[
                    fault_code_signal(definition.code)].address == 1
            else:
                assert "reason_address" not in entry
    assert seen == codes


@pytest.mark.parametrize(("protocols", "tables"), [
    (("opcua",), {"opcua"}), (("modbus",), {"modbus"}), (("opcua", "modbus"), {"opcua", "modbus"})])
def test_protocols_choose_the_tables(plant: PlantDefinition, protocols: tuple[str, ...],
                                     tables: set[str]) -> None:
    assert set(tomllib.loads(simulator_tag_map(plant, protocols=protocols))) == tables


def test_defaults_match_the_simulator_defaults(plant: PlantDefinition) -> None:
    parsed: dict[str, Any] = tomllib.loads(simulator_tag_map(plant))
    assert parsed["opcua"][0]["endpoint"] == "opc.tcp://127.0.0.1:4840"
    assert parsed["opcua"][0]["publishing_interval_ms"] == 50
    assert {(d["host"], d["port"], d["word_order"], d["poll_interval_ms"])
            for d in parsed["modbus"]} == {("127.0.0.1", 5020, "big", 100)}


def test_any_plant_and_odd_hosts(make_plant: PlantMaker) -> None:
    plant = make_plant([
        machine("M1", ("level", "process_value"), ("state", "state"), ("flow", "process_value")),
        machine("M2", ("good", "good_count")),
        machine("EMPTY")])
    parsed = tomllib.loads(simulator_tag_map(plant, host="::1"))
    assert parsed["opcua"][0]["endpoint"] == "opc.tcp://[::1]:4840"
    m1, m2 = parsed["modbus"]
    assert m1["registers"] == [
        {"signal": "M1.level", "address": 6, "type": "float32"},
        {"signal": "M1.state", "address": 0, "type": "uint16", "reason_address": 1},
        {"signal": "M1.flow", "address": 8, "type": "float32"}]
    assert (m2["unit"], m2["registers"]) == (
        2, [{"signal": "M2.good", "address": 2, "type": "uint32"}])
    quoted = tomllib.loads(simulator_tag_map(plant, host='plc "north"\\1'))
    assert quoted["modbus"][0]["host"] == 'plc "north"\\1'


def test_bad_choices_are_refused(plant: PlantDefinition) -> None:
    with pytest.raises(ValueError, match="protocols"):
        simulator_tag_map(plant, protocols=("profinet",))
    with pytest.raises(ValueError, match="protocols"):
        simulator_tag_map(plant, protocols=())
    with pytest.raises(ValueError, match="word order"):
        simulator_tag_map(plant, word_order="middle")
