"""The MQTT collector against a real mosquitto started here, fed by the simulator's
Sparkplug B edge node (or by hand for JSON and bad messages), into the test database.

What the simulator served (its history, in milliseconds as Sparkplug carries them) is the
truth: counted per machine and minute on both sides, nothing may be missing or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from ingest import sparkplug
from ingest.broker import BrokerAddress, Connection
from ingest.collect import Collection
from ingest.conditioning import Quality
from ingest.health import describe_status
from ingest.mqtt import MqttCollector
from ingest.simulator.broker import LocalBroker, mosquitto_path
from ingest.simulator.runner import ServedValue, Simulator
from ingest.simulator.sparkplug_edge import SparkplugEdge, SparkplugTarget
from ingest.simulator.tagmap import simulator_tag_map
from ingest.tagmap import PlantSignal
from tests.ingest.collecting import (
    collecting,
    collector_status,
    eventually,
    in_event_loop,
    load_sample_plant,
    settled,
    stored_process_values,
    tag_map_from,
)
from transactional.plant_file import PlantDefinition

pytestmark = pytest.mark.slow

MachineMinute = tuple[str, dt.datetime]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    try:
        mosquitto_path()
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    with LocalBroker(tmp_path / "broker") as running:
        yield running


def _minute(ts: dt.datetime) -> dt.datetime:
    return ts.replace(second=0, microsecond=0)


def _machine_of(code: str) -> str:
    return code.split(".")[0]


def served_per_minute(history: list[ServedValue], signals: dict[str, PlantSignal],
                      ) -> tuple[Counter[MachineMinute], Counter[MachineMinute],
                                 Counter[MachineMinute]]:
    """Process values, good parts and state changes the simulator served, per machine and
    minute (the first value of each counter is its baseline)."""
    values: Counter[MachineMinute] = Counter()
    parts: Counter[MachineMinute] = Counter()
    states: Counter[MachineMinute] = Counter()
    last: dict[str, float] = {}
    for code, when, value in history:
        signal = signals.get(code)
        if signal is None:
            continue
        key = (_machine_of(code), _minute(when))
        if signal.kind == "process_value":
            values[key] += 1
        elif signal.kind == "good_count":
            if code in last:
                parts[key] += int(value - last[code])
        elif signal.kind == "state" and last.get(code) != value:
            states[key] += 1
        last[code] = value
    return values, parts, states


def stored_per_minute(url: str) -> tuple[Counter[MachineMinute], Counter[MachineMinute],
                                        Counter[MachineMinute]]:
    with psycopg.connect(url) as conn:
        values = conn.execute(
            "SELECT e.code, date_trunc('minute', p.ts), count(*) FROM ts.process_value p "
            "JOIN mes.signal s ON s.id = p.signal_id JOIN mes.equipment e ON e.id = "
            "s.equipment_id WHERE p.value IS NOT NULL GROUP BY 1, 2").fetchall()
        parts = conn.execute(
            "SELECT e.code, date_trunc('minute', c.ts), sum(c.good) FROM ts.production_count c "
            "JOIN mes.equipment e ON e.id = c.equipment_id GROUP BY 1, 2").fetchall()
        states = conn.execute(
            "SELECT e.code, date_trunc('minute', s.ts), count(*) FROM ts.equipment_state s "
            "JOIN mes.equipment e ON e.id = s.equipment_id GROUP BY 1, 2").fetchall()
    return tuple(Counter({(code, minute): int(n) for code, minute, n in rows if n})
                 for rows in (values, parts, states))  # type: ignore[return-value]


def assert_stored_as_served(url: str, history: list[ServedValue],
                            signals: dict[str, PlantSignal]) -> int:
    """Per machine and minute: as many values, parts and state changes as served."""
    served = served_per_minute(history, signals)
    stored = stored_per_minute(url)
    for kind, want, have in zip(("process values", "good parts", "state changes"),
                                served, stored, strict=True):
        assert +have == +want, kind
    # Every value exactly, too: per signal, the same (time, value) pairs.
    by_signal = stored_process_values(url)
    for signal in (s for s in signals.values() if s.kind == "process_value"):
        expected = [(when, value) for code, when, value in history if code == signal.code]
        assert [(ts, value) for ts, value, quality in by_signal[signal.code]
                if quality != Quality.COMMUNICATION_LOST] == expected, signal.code
    return sum(served[0].values())


async def _running(simulator: Simulator) -> SparkplugEdge:
    """The simulator's edge node, once it is connected and born."""
    edge = simulator.sparkplug
    assert edge is not None
    await eventually(edge.connected.is_set, 15, "the edge node connected and was born")
    return edge


def _simulator(plant: PlantDefinition, broker: LocalBroker, seed: int) -> Simulator:
    return Simulator(plant, seed=seed, speed=100, tick_seconds=1.0, opcua_port=None,
                     modbus_port=None, record=True, sparkplug=SparkplugTarget(
                         BrokerAddress("127.0.0.1", broker.port)))


@contextlib.asynccontextmanager
async def _collecting(plant: PlantDefinition, signals: dict[str, PlantSignal],
                      broker: LocalBroker, url: str, tmp_path: Path,
                      ) -> AsyncIterator[tuple[Collection, MqttCollector]]:
    """A collection of the simulator's Sparkplug B tag map, subscribed."""
    tag_map = tag_map_from(simulator_tag_map(plant, protocols=("sparkplug",),
                                             mqtt_port=broker.port), tmp_path, signals)
    async with collecting(tag_map, url, tmp_path / "collect") as collection:
        collector = collection.mqtt[0]
        await eventually(collector.connected.is_set, 15, "the collector subscribed")
        yield collection, collector


async def _stop_machines(simulator: Simulator, collection: Collection) -> None:
    """The machines stop changing; what they published is in the writer's hands."""
    simulator.pause()
    await asyncio.sleep(0.3)
    await settled(collection)


@in_event_loop
async def test_sparkplug_values_arrive_in_the_hypertables_exactly_once(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    plant, signals = load_sample_plant(db_url)
    async with _collecting(plant, signals, broker, db_url, tmp_path) as (collection,
                                                                         collector):
        async with _simulator(plant, broker, seed=3) as simulator:
            await _running(simulator)
            await asyncio.sleep(3)  # 300 simulated seconds
            await _stop_machines(simulator, collection)
        history = list(simulator.history)
        status = collector_status(tmp_path / "collect")
    assert collection.health.samples_dropped == 0
    assert collector.figures["sequence_gaps"] == 0
    assert collector.figures["rejected"] == {}
    assert assert_stored_as_served(db_url, history, signals) > 2000
    assert status["mqtt"]["simulator-sparkplug"]["messages"] > 300
    text = describe_status(status)
    assert "mqtt simulator-sparkplug:" in text and "messages/s" in text
    assert "sequence gaps 0" in text
    assert "source simulator-sparkplug: connected to mqtt://127.0.0.1:" in text


def _gaps(url: str) -> list[tuple[str, str, bool]]:
    """(source, cause, closed) of every collection gap."""
    with psycopg.connect(url) as conn:
        return [(source, cause, end is not None) for source, cause, end in conn.execute(
            "SELECT source, cause, gap_end FROM ts.collection_gap ORDER BY id").fetchall()]


@in_event_loop
async def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    plant, signals = load_sample_plant(db_url)
    async with _collecting(plant, signals, broker, db_url, tmp_path) as (collection,
                                                                         collector):
        async with _simulator(plant, broker, seed=7) as simulator:
            edge = await _running(simulator)
            await asyncio.sleep(2)
            await asyncio.to_thread(broker.stop)
            await eventually(lambda: not collector.connected.is_set(), 10,
                             "the collector noticed")
            await asyncio.sleep(1)  # the machines go on; the edge node keeps what changes
            await asyncio.to_thread(broker.start)
            await eventually(collector.connected.is_set, 15, "the collector is back")
            await eventually(lambda: edge.births >= 2, 15, "the edge node was born again")
            await asyncio.sleep(2)
            simulator.pause()
            await asyncio.sleep(0.3)
            await settled(collection, quiet=0.5)
        history = list(simulator.history)
    assert collection.health.samples_dropped == 0
    assert collector.figures["rejected"] == {}
    assert assert_stored_as_served(db_url, history, signals) > 2000
    gaps = _gaps(db_url)
    # The broker's absence is a gap of every machine, closed when data flowed again (the
    # edge node's death, which the broker published as it stopped, may open its own).
    closed = {source.rsplit("/", 1)[1] for source, cause, end in gaps
              if cause == "source_lost" and end}
    assert closed == {machine.code for machine in plant.machines}
    # Open at the end: one per machine, from the simulator's NDEATH as it stopped or from the
    # collector's own stop, whichever came first.
    assert len([g for g in gaps if not g[2]]) == len(plant.machines)


@in_event_loop
async def test_a_sequence_gap_asks_for_a_rebirth_and_the_new_aliases_are_used(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    plant, signals = load_sample_plant(db_url)
    async with _collecting(plant, signals, broker, db_url, tmp_path) as (collection,
                                                                         collector):
        async with _simulator(plant, broker, seed=5) as simulator:
            edge = await _running(simulator)
            await asyncio.sleep(1)
            first_aliases = dict(collector._nodes[("open-mes", "simulator")].births["PRESS-1"])
            edge.skip_sequence()
            await eventually(lambda: edge.rebirths_answered >= 1, 10, "a rebirth was asked for")
            await asyncio.sleep(1.5)
            await _stop_machines(simulator, collection)
        history = list(simulator.history)
        rebuilt = dict(collector._nodes[("open-mes", "simulator")].births["PRESS-1"])
        status = collector_status(tmp_path / "collect")
    assert collector.figures["sequence_gaps"] == 1
    assert collector.figures["rebirths_requested"] >= 2  # the first connection's, the gap's
    assert collector.figures["rejected"] == {}
    # The same metrics under new aliases, and what came after them is stored as served.
    assert sorted(rebuilt.values()) == sorted(first_aliases.values())
    assert not set(rebuilt) & set(first_aliases)
    saved = json.loads((tmp_path / "collect" / "sparkplug_births.json").read_text())
    assert {int(a) for a in saved["open-mes/simulator"]["births"]["PRESS-1"]} == set(rebuilt)
    assert assert_stored_as_served(db_url, history, signals) > 1000
    lost = [g for g in _gaps(db_url) if g[1] == "message_lost"]
    assert len(lost) == len(plant.machines) and all(closed for _, _, closed in lost)
    assert status["mqtt"]["simulator-sparkplug"]["sequence_gaps"] == 1
    assert "sequence gaps 1" in describe_status(status)


def _communication_lost(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {code for (code,) in conn.execute(
            "SELECT DISTINCT s.code FROM ts.process_value p JOIN mes.signal s "
            "ON s.id = p.signal_id WHERE p.quality = %s AND p.value IS NULL",
            (int(Quality.COMMUNICATION_LOST),)).fetchall()}


@in_event_loop
async def test_a_death_marks_the_signals_communication_lost_until_the_next_birth(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    plant, signals = load_sample_plant(db_url)
    tag_map = tag_map_from(simulator_tag_map(plant, protocols=("sparkplug",),
                                             mqtt_port=broker.port), tmp_path, signals)
    process_values = {s.code for s in signals.values() if s.kind == "process_value"}
    async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
        collector = collection.mqtt[0]
        await eventually(collector.connected.is_set, 15, "the collector subscribed")
        async with _simulator(plant, broker, seed=1) as simulator:
            await _running(simulator)
            await asyncio.sleep(0.5)
        # Stopped: the edge node published its NDEATH.
        await eventually(lambda: len(collection.gaps.open_sources) == len(plant.machines), 10,
                         "every machine's collection gap opened")
        await settled(collection)
        async with _simulator(plant, broker, seed=2) as simulator:
            await _running(simulator)
            await eventually(lambda: not collection.gaps.open_sources, 10,
                             "the births closed the gaps")
            await asyncio.sleep(0.3)
            simulator.pause()
    assert _communication_lost(db_url) == process_values
    # The first death's gaps closed with the births; the second simulator's own death, as
    # it stopped, opened new ones.
    closed = Counter(source.rsplit("/", 1)[1] for source, cause, end in _gaps(db_url)
                     if cause == "source_lost" and end)
    assert closed == Counter({machine.code: 1 for machine in plant.machines})
    assert collector.figures["rejected"] == {}


def _hand_tag_map(broker: LocalBroker) -> str:
    return f"""
[[mqtt]]
name = "line-iiot"
host = "127.0.0.1"
port = {broker.port}
client_id = "mes-test"

[[mqtt.sparkplug]]
group = "G"
node = "EDGE"
device = "PRESS-1"
metrics = [
  {{ signal = "PRESS-1.temperature", metric = "Temperature" }},
  {{ signal = "PRESS-1.good", metric = "Good" }},
]

[[mqtt.json]]
topic = "sensors/paint-1"
timestamp = "time"
values = [
  {{ signal = "PAINT-1.temperature", path = "readings.oven[0]" }},
  {{ signal = "PAINT-1.speed", path = "readings.speed" }},
]
"""


def _at(second: int) -> int:
    return sparkplug.milliseconds(dt.datetime(2026, 11, 30, 10, 0, second, tzinfo=dt.UTC))


@in_event_loop
async def test_bad_messages_are_set_aside_whole_and_collecting_goes_on(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    _plant, signals = load_sample_plant(db_url)
    tag_map = tag_map_from(_hand_tag_map(broker), tmp_path, signals)
    folder = tmp_path / "collect"
    edge = "spBv1.0/G/{}/EDGE"
    temperature = sparkplug.MetricOut(50.0, sparkplug.DOUBLE, alias=1, timestamp=_at(2))
    async with collecting(tag_map, db_url, folder) as collection:
        collector = collection.mqtt[0]
        await eventually(collector.connected.is_set, 15, "the collector subscribed")
        publisher = Connection("test-publisher", lambda _m: None, clean_start=True)
        await publisher.open(BrokerAddress("127.0.0.1", broker.port))

        def send(topic: str, payload: bytes) -> None:
            publisher.publish(topic, payload, qos=1)

        send(edge.format("NBIRTH"), sparkplug.encode([sparkplug.MetricOut(
            0, sparkplug.INT64, name="bdSeq")], _at(0), 0))
        send(edge.format("DBIRTH") + "/PRESS-1", sparkplug.encode([
            sparkplug.MetricOut(40.0, sparkplug.DOUBLE, name="Temperature", alias=1,
                                timestamp=_at(1)),
            sparkplug.MetricOut(100, sparkplug.UINT32, name="Good", alias=2,
                                timestamp=_at(1))], _at(1), 1))
        # An alias no birth defined, beside a good metric: none of it may be stored.
        send(edge.format("DDATA") + "/PRESS-1", sparkplug.encode([
            temperature, sparkplug.MetricOut(7, sparkplug.UINT32, alias=99,
                                             timestamp=_at(2))], _at(2), 2))
        send(edge.format("DDATA") + "/PRESS-1", b"\xff\x01 not protobuf")
        send(edge.format("DDATA") + "/PRESS-1", sparkplug.encode([
            sparkplug.MetricOut(55.5, sparkplug.DOUBLE, alias=1, timestamp=_at(3)),
            sparkplug.MetricOut(104, sparkplug.UINT32, alias=2, timestamp=_at(3))],
            _at(3), 3))
        json_topic = "sensors/paint-1"
        send(json_topic, b"{not json")
        send(json_topic, json.dumps({"readings": {"speed": 3.0}}).encode())  # no time
        send(json_topic, json.dumps({"time": "2026-11-30T10:00:04+00:00",
                                     "readings": {"oven": [180.5], "speed": "n/a"}}).encode())
        send(json_topic, json.dumps({"time": _at(5), "readings": {"oven": [181.0]}}).encode())
        await eventually(lambda: collector.figures["messages"] >= 9, 10, "all messages came")
        await settled(collection)
        status = collector_status(folder)
        await publisher.close()
    assert collector.figures["rejected"] == {
        "unknown alias": 1, "not Sparkplug B": 1, "not JSON": 1, "no time": 1}
    values = stored_process_values(db_url)
    stamps = {second: sparkplug.to_time(_at(second)) for second in range(6)}
    assert [(ts, v) for ts, v, _ in values["PRESS-1.temperature"]] == [
        (stamps[1], 40.0), (stamps[3], 55.5)]
    assert [(ts, v) for ts, v, _ in values["PAINT-1.temperature"]] == [
        (stamps[4], 180.5), (stamps[5], 181.0)]
    assert [(ts, v, q) for ts, v, q in values["PAINT-1.speed"]] == [
        (stamps[4], None, Quality.BAD)]
    with psycopg.connect(db_url) as conn:
        counted = conn.execute("SELECT ts, good FROM ts.production_count").fetchall()
    assert counted == [(stamps[3], 4)]  # from the birth's 100, never the refused 7
    kept = [json.loads(line) for line in
            (folder / "rejected_messages.jsonl").read_text().splitlines()]
    assert [k["reason"] for k in kept] == ["unknown alias", "not Sparkplug B", "not JSON",
                                           "no time"]
    assert "alias 99" in kept[0]["detail"]
    assert "rejected 1 no time, 1 not JSON, 1 not Sparkplug B, 1 unknown alias" in (
        describe_status(status))


@in_event_loop
async def test_collect_check_asks_for_births_and_reads_every_metric_once(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    from typer.testing import CliRunner

    from mes.cli import app

    plant, _ = load_sample_plant(db_url)
    env = {"MES_DATABASE_URL": db_url}
    path = tmp_path / "tags.toml"
    path.write_text(simulator_tag_map(plant, protocols=("sparkplug",), mqtt_port=broker.port))

    async def check() -> tuple[int, str]:
        result = await asyncio.to_thread(CliRunner().invoke, app, [
            "collect", "--check", "--tag-map", str(path), "--dir", str(tmp_path / "c")],
            env=env)
        return result.exit_code, result.output

    async with _simulator(plant, broker, seed=4) as simulator:
        await _running(simulator)
        simulator.pause()
        await simulator.write("PRESS-1.temperature", 42.25)
        await asyncio.sleep(0.2)
        code, output = await check()
        edge = simulator.sparkplug
        assert edge is not None and edge.rebirths_answered == 1
    assert code == 0, output
    [line] = [line for line in output.splitlines() if line.startswith("PRESS-1.temperature ")]
    assert line.split() == ["PRESS-1.temperature", "simulator-sparkplug",
                            "simulator-sparkplug:open-mes/simulator/PRESS-1", "Temperature",
                            "42.25", "good"]
    assert output.splitlines()[-1] == "56 addresses read, all good"  # 48 + 8 reasons
    # Its own session: the collector's queue on the broker is not touched.
    assert not (tmp_path / "c").exists()
    broker.stop()
    code, output = await check()
    assert code == 1
    assert "cannot read from mqtt://127.0.0.1" in output


@in_event_loop
async def test_messages_queued_while_the_collector_was_stopped_are_stored_after_it_starts(
        db_url: str, tmp_path: Path, broker: LocalBroker) -> None:
    plant, signals = load_sample_plant(db_url)
    tag_map = tag_map_from(simulator_tag_map(plant, protocols=("sparkplug",),
                                             mqtt_port=broker.port), tmp_path, signals)
    folder = tmp_path / "collect"
    async with _simulator(plant, broker, seed=9) as simulator:
        edge = simulator.sparkplug
        assert edge is not None
        simulator.pause()
        async with collecting(tag_map, db_url, folder) as collection:
            collector = collection.mqtt[0]
            await eventually(collector.connected.is_set, 15, "the collector subscribed")
            await eventually(lambda: edge.births >= 2, 10, "the new session's rebirth")
            simulator.resume()
            await asyncio.sleep(1)
        # Stopped cleanly: the broker queues what the machines do meanwhile.
        await asyncio.sleep(1.5)
        async with collecting(tag_map, db_url, folder) as collection:
            collector = collection.mqtt[0]
            await eventually(collector.connected.is_set, 15, "the collector is back")
            await asyncio.sleep(1)
            await _stop_machines(simulator, collection)
        history = list(simulator.history)
    # The queued messages were read with the aliases of the births saved before the stop:
    # no rebirth was needed, nothing was set aside.
    assert collector.figures["rebirths_requested"] == 0
    assert collector.figures["rejected"] == {}
    assert collector.figures["messages"] > 100
    assert assert_stored_as_served(db_url, history, signals) > 1000
