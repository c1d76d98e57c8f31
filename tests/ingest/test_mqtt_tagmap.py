"""MQTT in tag maps and the Sparkplug B payload: what binds, what is refused and why.

No broker here: the tag map is read against the sample plant's signals, and payloads are
encoded and decoded in memory.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from ingest import sparkplug
from ingest.simulator.tagmap import simulator_tag_map
from ingest.tagmap import PlantSignal, TagMap, TagMapError, read_tag_map
from tests.conftest import SAMPLE_PLANT
from transactional.plant_file import PlantDefinition, read_plant_file


@pytest.fixture(scope="module")
def plant() -> PlantDefinition:
    return read_plant_file(SAMPLE_PLANT)


@pytest.fixture(scope="module")
def signals(plant: PlantDefinition) -> dict[str, PlantSignal]:
    found: dict[str, PlantSignal] = {}
    for equipment_id, machine in enumerate(plant.machines, start=101):
        for signal in machine.signals:
            found[signal.code] = PlantSignal(len(found) + 1, signal.code, signal.kind,
                                             equipment_id, machine.code, signal.low_limit,
                                             signal.high_limit)
    return found


def _read(tmp_path: Path, text: str, signals: dict[str, PlantSignal]) -> TagMap:
    path = tmp_path / "tagmap.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return read_tag_map(path, signals)


def _refusal(tmp_path: Path, text: str, signals: dict[str, PlantSignal]) -> list[str]:
    with pytest.raises(TagMapError) as refused:
        _read(tmp_path, text, signals)
    return refused.value.problems


def test_the_simulators_sparkplug_map_binds_every_signal_once_per_device(
        tmp_path: Path, plant: PlantDefinition, signals: dict[str, PlantSignal]) -> None:
    tag_map = _read(tmp_path, simulator_tag_map(plant, protocols=("sparkplug",),
                                                mqtt_port=1884), signals)
    [source] = tag_map.mqtt
    assert (source.source.host, source.source.port) == ("127.0.0.1", 1884)
    assert Counter(b.signal.code for b in tag_map.bindings) == Counter(list(signals))
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


def test_sparkplug_payloads_round_trip_with_signed_and_unsigned_numbers() -> None:
    data = sparkplug.encode([
        sparkplug.MetricOut(-5, sparkplug.INT32, name="State", alias=1, timestamp=1000),
        sparkplug.MetricOut(4_294_967_295, sparkplug.UINT32, alias=2),
        sparkplug.MetricOut(-2, sparkplug.INT64, alias=3),
        sparkplug.MetricOut(None, sparkplug.DOUBLE, alias=4),
        sparkplug.MetricOut(True, sparkplug.BOOLEAN, alias=5, historical=True),
    ], timestamp=2000, seq=255)
    payload = sparkplug.decode(data)
    assert (payload.seq, payload.timestamp) == (255, 2000)
    assert [sparkplug.number(m) for m in payload.metrics] == [-5, 4_294_967_295, -2, None, 1]
    assert payload.metrics[0].name == "State" and payload.metrics[4].is_historical
    # An Int8 sent in its own width (0xFB) reads as -5 too.
    int8 = sparkplug.decode(sparkplug.encode(
        [sparkplug.MetricOut(0xFB, sparkplug.INT8, alias=1)], 0)).metrics[0]
    assert sparkplug.number(int8) == -5


def test_what_is_no_sparkplug_number_is_said_so() -> None:
    with pytest.raises(sparkplug.PayloadError, match="not a Sparkplug B payload"):
        sparkplug.decode(b"\xff\xff\xff")
    payload = sparkplug.decode(sparkplug.encode([], 0))
    metric = payload.metrics.add(alias=1, datatype=sparkplug.STRING, string_value="n/a")
    with pytest.raises(sparkplug.NotANumber, match="a string value"):
        sparkplug.number(metric)
    assert sparkplug.parse_topic("spBv1.0/G/DDATA/N/D") == ("G", "DDATA", "N", "D")
    assert sparkplug.parse_topic("spBv1.0/STATE/host") is None
    assert sparkplug.parse_topic("plant/line-1/temperature") is None
