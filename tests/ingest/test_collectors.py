"""Both collectors against the line simulator on loopback, into the real test database.

What the simulator served (its recorded history) is the truth the stored rows are checked
against: values, timestamps, machine states with their fault codes, and part counts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from asyncua.ua.status_codes import StatusCodes

from ingest.conditioning import Quality
from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from tests.ingest.collecting import (
    assert_process_values_stored_as_served,
    collecting,
    counts_served,
    eventually,
    in_event_loop,
    last_served,
    load_sample_plant,
    polled,
    quality_for,
    received,
    served_by_signal,
    settled,
    stored_counts,
    stored_process_values,
    stored_states,
    tag_map_from,
)
from transactional.plant_file import PlantDefinition

pytestmark = pytest.mark.slow


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _machines(plant: PlantDefinition) -> list[str]:
    return [machine.code for machine in plant.machines]


@in_event_loop
async def test_opcua_collector_stores_every_served_value_once_with_its_source_time(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    # 300 simulated seconds in 3: states change, faults come and go.
    async with Simulator(plant, seed=3, speed=100, tick_seconds=1.0, opcua_port=0,
                         modbus_port=None, record=True) as simulator:
        simulator.pause()
        assert simulator.opcua_port is not None
        tag_map = tag_map_from(simulator_tag_map(
            plant, opcua_port=simulator.opcua_port, protocols=("opcua",),
            publishing_interval_ms=50), tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            collector = collection.opcua[0]
            await eventually(collector.connected.is_set, 15, "the collector subscribed")
            await eventually(  # the subscription's first values: the baselines
                lambda: collection.health.samples_received >= len(tag_map.opcua[0].nodes), 10,
                "every node's first value")
            baseline_at = _now()
            simulator.resume()
            await asyncio.sleep(3)  # the machines run for 300 simulated seconds
            simulator.pause()
            await settled(collection)  # the last publish
        assert collection.health.samples_dropped == 0
        assert collection.health.database == "connected"
    history = list(simulator.history)
    served = served_by_signal(history)
    # 24 process values changing every simulated tick
    assert assert_process_values_stored_as_served(db_url, history, signals, baseline_at) > 1000

    states = stored_states(db_url)
    for machine in _machines(plant):
        served_states = served[f"{machine}.state"]
        initial_at = [c for c in served_states if c[0] <= baseline_at][-1][0]
        expected_pairs: list[tuple[int, int]] = []
        for when, state in served_states:
            if when < initial_at:
                continue
            pair = (int(state), int(last_served(history, f"{machine}.fault_code", when)))
            if not expected_pairs or expected_pairs[-1] != pair:
                expected_pairs.append(pair)
        assert [(state, reason) for _, state, reason in states[machine]] == expected_pairs
    assert sum(len(v) for v in states.values()) > len(plant.machines)  # states did change

    expected_counts = counts_served(history, plant, baseline_at)
    assert sum(good for good, _ in expected_counts.values()) > 20
    assert stored_counts(db_url) == expected_counts


@in_event_loop
async def test_modbus_collector_stores_polled_values_and_exact_counts(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    poll = dt.timedelta(milliseconds=100)
    async with Simulator(plant, seed=5, speed=4, opcua_port=None, modbus_port=0,
                         word_order="little", record=True) as simulator:
        simulator.pause()
        assert simulator.modbus_port is not None
        tag_map = tag_map_from(simulator_tag_map(
            plant, modbus_port=simulator.modbus_port, protocols=("modbus",),
            word_order="little", poll_interval_ms=100), tmp_path, signals)
        assert all(len(device.reads) == 1 for device in tag_map.modbus)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            await polled(collection, 2)  # first polls: the counters' baselines
            baseline_at = _now()
            simulator.resume()
            await asyncio.sleep(3)  # the machines run for 12 simulated seconds
            simulator.pause()
            await polled(collection, 2)  # the counters as they were at the pause
        polls = [collector.polls for collector in collection.modbus]
        assert min(polls) >= 30, polls  # 4 s at 100 ms, each device in its own task
        assert collection.health.samples_dropped == 0
    history = list(simulator.history)
    served = served_by_signal(history)
    stored = stored_process_values(db_url)
    slack = dt.timedelta(milliseconds=60)
    for signal in (s for s in signals.values() if s.kind == "process_value"):
        rows = stored[signal.code]
        assert len(rows) >= 30
        changes = served[signal.code]
        for ts, value, quality in rows:
            # The value polled at ts was current at some moment of the poll before it.
            current = [v for i, (when, v) in enumerate(changes)
                       if when <= ts + slack and (i + 1 == len(changes)
                                                  or changes[i + 1][0] >= ts - poll - slack)]
            assert value in current, (signal.code, ts, value)
            assert quality == quality_for(signal, value)
    assert stored_counts(db_url) == counts_served(history, plant, baseline_at)
    states = stored_states(db_url)
    for machine in _machines(plant):
        served_pairs = {(int(v), int(last_served(history, f"{machine}.fault_code", when)))
                        for when, v in served[f"{machine}.state"]}
        assert states[machine]
        assert {(state, reason) for _, state, reason in states[machine]} <= served_pairs


@in_event_loop
async def test_opcua_server_restart_is_survived_and_the_gap_is_flagged(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, seed=7, speed=10, opcua_port=0, modbus_port=None,
                         record=True) as simulator:
        assert simulator.opcua_port is not None
        tag_map = tag_map_from(simulator_tag_map(
            plant, opcua_port=simulator.opcua_port, protocols=("opcua",),
            publishing_interval_ms=50), tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            collector = collection.opcua[0]
            await eventually(collector.connected.is_set, 15, "the collector subscribed")
            await eventually(lambda: collection.health.rows_written > 0, 10, "values stored")
            down_at = _now()
            await simulator.stop_opcua()
            await eventually(lambda: not collector.connected.is_set(), 15,
                             "the collector noticed the server is gone")
            await asyncio.sleep(2)
            await simulator.start_opcua()
            up_at = _now()
            await eventually(collector.connected.is_set, 20, "the collector reconnected")
            await received(collection, len(tag_map.opcua[0].nodes), "values after the restart")
            assert collection.health.sources[collector.name].startswith("connected")
        assert collector.reconnects == 1
    stored = stored_process_values(db_url)
    for signal in (s for s in signals.values() if s.kind == "process_value"):
        rows = stored[signal.code]
        gap = [ts for ts, value, quality in rows if quality == Quality.COMMUNICATION_LOST]
        assert len(gap) == 1, signal.code
        assert down_at <= gap[0] <= up_at
        assert [value for ts, value, q in rows if q == Quality.COMMUNICATION_LOST] == [None]
        assert any(ts > up_at and q != Quality.COMMUNICATION_LOST for ts, _, q in rows), (
            f"{signal.code}: no value after the restart")


async def _silent_server() -> asyncio.Server:
    """A device that accepts the connection and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    return await asyncio.start_server(hold, "127.0.0.1", 0)


@in_event_loop
async def test_a_failing_modbus_device_is_flagged_and_does_not_hold_up_a_healthy_one(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    silent = await _silent_server()
    silent_port = silent.sockets[0].getsockname()[1]
    async with Simulator(plant, seed=1, opcua_port=None, modbus_port=0) as simulator:
        port = simulator.modbus_port
        tags = f"""
[[modbus]]
name = "healthy"
host = "127.0.0.1"
port = {port}
unit = 1
poll_interval_ms = 100
timeout_ms = 300
registers = [
  {{ signal = "PRESS-1.state", address = 0, type = "uint16", reason_address = 1 }},
  {{ signal = "PRESS-1.good", address = 2, type = "uint32" }},
  {{ signal = "PRESS-1.temperature", address = 6, type = "float32" }},
]

[[modbus]]
name = "refusing"
host = "127.0.0.1"
port = {port}
unit = 2
poll_interval_ms = 100
timeout_ms = 300
registers = [
  {{ signal = "PRESS-2.temperature", address = 500, type = "float32" }},
]

[[modbus]]
name = "silent"
host = "127.0.0.1"
port = {silent_port}
unit = 1
poll_interval_ms = 100
timeout_ms = 300
registers = [
  {{ signal = "DEBURR-1.temperature", address = 6, type = "float32" }},
]
"""
        tag_map = tag_map_from(tags, tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            await asyncio.sleep(3)
            healthy, refusing, _ = collection.modbus
            sources = dict(collection.health.sources)
    silent.close()
    assert healthy.polls >= 27, healthy.polls  # 3 s at 100 ms, not slowed by the others
    assert refusing.polls >= 25
    assert sources["healthy"] == "polling"
    assert sources["refusing"].startswith("device_exception: exception code 2")
    assert sources["silent"].startswith("timeout")
    stored = stored_process_values(db_url)
    assert len(stored["PRESS-1.temperature"]) >= 27
    assert all(q == Quality.GOOD and v is not None for _, v, q in stored["PRESS-1.temperature"])
    # Flagged once, when the condition began, not on every poll.
    assert [(v, q) for _, v, q in stored["PRESS-2.temperature"]] == [
        (None, Quality.DEVICE_EXCEPTION)]
    assert [(v, q) for _, v, q in stored["DEBURR-1.temperature"]] == [(None, Quality.TIMEOUT)]


@in_event_loop
async def test_opcua_status_codes_become_quality_and_a_missing_node_is_flagged(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=0, modbus_port=None) as simulator:
        simulator.pause()
        endpoint = simulator.opcua_endpoint
        tag_map = tag_map_from(f"""
[[opcua]]
name = "press"
endpoint = "{endpoint}"
publishing_interval_ms = 50
nodes = [
  {{ signal = "PRESS-1.temperature", node = "ns=2;s=PRESS-1.temperature" }},
  {{ signal = "PRESS-1.vibration", node = "ns=2;s=PRESS-1.vibration" }},
  {{ signal = "PRESS-1.speed", node = "ns=2;s=PRESS-1.no-such-node" }},
]
""", tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            collector = collection.opcua[0]
            await eventually(collector.connected.is_set, 15, "subscribed")
            await eventually(lambda: collection.health.samples_received >= 2, 10,
                             "the two known nodes' first values")
            before = collection.health.samples_received
            await simulator.write_status("PRESS-1.temperature", StatusCodes.BadSensorFailure)
            await simulator.write_status("PRESS-1.vibration", StatusCodes.UncertainLastUsableValue,
                                         value=3.0)
            await received(collection, 2, "both status changes", since=before)
            before = collection.health.samples_received
            await simulator.write("PRESS-1.temperature", 41.5)
            await received(collection, 1, "the good value again", since=before)
        assert collector.refused == {"ns=2;s=PRESS-1.no-such-node": "BadNodeIdUnknown"}
        assert collection.health.sources["press"] == "stopped"
    stored = stored_process_values(db_url)
    temperature = [(v, q) for _, v, q in stored["PRESS-1.temperature"]]
    assert temperature[1:] == [(None, Quality.DEVICE_EXCEPTION), (41.5, Quality.GOOD)]
    assert [(v, q) for _, v, q in stored["PRESS-1.vibration"]][-1] == (3.0, Quality.UNCERTAIN)
    # The node the server does not know: one bad row, the others collected regardless.
    assert [(v, q) for _, v, q in stored["PRESS-1.speed"]] == [(None, Quality.BAD)]


@in_event_loop
async def test_a_modbus_value_outside_the_signal_limits_is_stored_and_flagged(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=None, modbus_port=0) as simulator:
        simulator.pause()
        assert simulator.modbus_port is not None
        tag_map = tag_map_from(simulator_tag_map(
            plant, modbus_port=simulator.modbus_port, protocols=("modbus",),
            poll_interval_ms=50), tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            await simulator.write("PRESS-1.temperature", 40.0)
            await polled(collection, 2)
            await simulator.write("PRESS-1.temperature", 500.0)  # the limits are 10-90
            await polled(collection, 2)
    rows = [(v, q) for _, v, q in stored_process_values(db_url)["PRESS-1.temperature"]]
    assert (40.0, Quality.GOOD) in rows
    assert rows[-1] == (500.0, Quality.OUT_OF_RANGE)
    assert {q for v, q in rows if v == 500.0} == {Quality.OUT_OF_RANGE}
