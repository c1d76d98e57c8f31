"""How many MQTT messages one collector takes, beside a subscriber that only counts them.

A local mosquitto holds a backlog of Sparkplug B DDATA messages (births first) for two
persistent sessions, published before either reads: then each drains it alone, so neither
competes with the publisher for the two cores. The baseline acknowledges each message as
it comes and does nothing else; the collector decodes, conditions, writes with COPY and
acknowledges once the rows are committed. Both figures come from the same run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench.ingest.hosts import Child
from bench.ingest.plants import WIDE_PREFIX
from ingest import sparkplug
from ingest.broker import BrokerAddress, Connection
from ingest.simulator.broker import LocalBroker
from transactional.plant_file import PlantDefinition

GROUP, NODE = "bench", "edge"
_SETTLE_SECONDS = 120.0


def _devices(plant: PlantDefinition, metrics_per_message: int) -> dict[str, list[str]]:
    """device (a bench machine) -> the signal codes of its metrics."""
    return {machine.code: [s.code for s in machine.signals][:metrics_per_message]
            for machine in plant.machines if machine.code.startswith(WIDE_PREFIX)}


def _tag_map(devices: dict[str, list[str]], port: int) -> str:
    lines = ["[[mqtt]]", 'name = "bench-mqtt"', 'host = "127.0.0.1"', f"port = {port}",
             'client_id = "bench-collector"', "receive_maximum = 65535"]
    for device, codes in devices.items():
        metrics = ", ".join(f'{{ signal = "{code}", metric = "{code}" }}' for code in codes)
        lines += ["", "[[mqtt.sparkplug]]", f'group = "{GROUP}"', f'node = "{NODE}"',
                  f'device = "{device}"', f"metrics = [{metrics}]"]
    return "\n".join(lines) + "\n"


def _backlog(devices: dict[str, list[str]], messages: int) -> list[tuple[str, bytes]]:
    """Births, then `messages` DDATA round-robin over the devices, a millisecond apart."""
    start = sparkplug.milliseconds(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    names = list(devices)
    out = [(sparkplug.topic(GROUP, "NBIRTH", NODE), sparkplug.encode(
        [sparkplug.MetricOut(0, sparkplug.INT64, name=sparkplug.BD_SEQ)], start, 0))]
    seq = 0
    for device, codes in devices.items():
        seq += 1
        out.append((sparkplug.topic(GROUP, "DBIRTH", NODE, device), sparkplug.encode(
            [sparkplug.MetricOut(50.0, sparkplug.DOUBLE, name=code, alias=i + 1,
                                 timestamp=start) for i, code in enumerate(codes)],
            start, seq)))
    for n in range(messages):
        device = names[n % len(names)]
        stamp = start + 1 + n
        seq = (seq + 1) % 256
        out.append((sparkplug.topic(GROUP, "DDATA", NODE, device), sparkplug.encode(
            [sparkplug.MetricOut(10.0 + (n % 800) / 10 + i / 100, sparkplug.DOUBLE,
                                 alias=i + 1, timestamp=stamp)
             for i in range(len(devices[device]))], stamp, seq)))
    return out


async def _publish(address: BrokerAddress, backlog: list[tuple[str, bytes]]) -> float:
    acknowledged = 0
    publisher = Connection("bench-publisher", lambda _m: None, clean_start=True,
                           max_inflight=1000)

    def counted(_mid: int) -> None:
        nonlocal acknowledged
        acknowledged += 1

    publisher.on_published = counted
    await publisher.open(address)
    started = time.perf_counter()
    for n, (topic, payload) in enumerate(backlog):
        publisher.publish(topic, payload, qos=1)
        if n % 500 == 0:
            await asyncio.sleep(0)
    while acknowledged < len(backlog):
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    await publisher.close()
    return seconds


async def _raw_session(address: BrokerAddress, expected: int | None) -> float:
    """Create the session (expected None), or drain it: seconds until `expected` came."""
    received = 0
    first: float | None = None

    def on_message(message: paho.MQTTMessage) -> None:
        nonlocal received, first
        if first is None:
            first = time.perf_counter()
        received += 1
        raw.ack(message.mid)

    raw = Connection("bench-raw", on_message, clean_start=False, session_expiry_seconds=3600,
                     receive_maximum=65535, manual_ack=True)
    started = time.perf_counter()
    await raw.open(address)
    await raw.subscribe([sparkplug.node_filter(GROUP, NODE)], wait=expected is None)
    if expected is not None:
        while received < expected and time.perf_counter() - started < _SETTLE_SECONDS:
            await asyncio.sleep(0.005)
    seconds = time.perf_counter() - started
    await raw.close()
    return seconds


def mqtt_capacity(collector: Child, plant: PlantDefinition, url: str, role: str,
                  folder: Path, messages: int, metrics_per_message: int = 10,
                  ) -> dict[str, Any]:
    """Messages and metrics per second one collector drains, beside a raw subscriber."""
    devices = _devices(plant, metrics_per_message)
    backlog = _backlog(devices, messages)
    metrics = sum(len(devices[topic.rsplit("/", 1)[1]]) for topic, _ in backlog[1:])
    with LocalBroker(folder / "broker") as broker:
        address = BrokerAddress("127.0.0.1", broker.port)
        tag_map = _tag_map(devices, broker.port)

        def collect() -> dict[str, Any]:
            health: dict[str, Any] = collector.call(
                "collect", url=url, tag_map=tag_map, directory=str(folder / "collect"),
                flush_seconds=0.05, role=role)
            return health

        # Both sessions first, so the broker queues the whole backlog for each.
        collect()
        idle: dict[str, Any] = collector.call("finish", timeout=120)
        asyncio.run(_raw_session(address, None))
        publish_seconds = asyncio.run(_publish(address, backlog))

        raw_seconds = asyncio.run(_raw_session(address, len(backlog)))

        # A new collection counts from 0; it drains from the moment it connects.
        started = time.perf_counter()
        collect()
        deadline = started + _SETTLE_SECONDS
        while True:
            health: dict[str, Any] = collector.call("health")
            written = int(health["rows_written"])
            if written >= metrics or time.perf_counter() > deadline:
                break
            time.sleep(0.02)
        collector_seconds = time.perf_counter() - started
        figures = health["mqtt"]["bench-mqtt"]
        collector.call("finish", timeout=120)
    # The collector's process was idle since the last collection finished.
    cpu = float(health["cpu_seconds"]) - float(idle["cpu_seconds"])
    return {
        "messages": len(backlog),
        "metrics": metrics,
        "metrics_per_message": metrics_per_message,
        "devices": len(devices),
        "publish_messages_per_second": round(len(backlog) / publish_seconds, 1),
        "raw_messages_per_second": round(len(backlog) / raw_seconds, 1),
        "collector_messages_per_second": round(len(backlog) / collector_seconds, 1),
        "collector_metrics_per_second": round(metrics / collector_seconds, 1),
        "collector_to_raw": round(raw_seconds / collector_seconds, 2),
        "collector_cpu_percent": round(100 * cpu / collector_seconds, 1),
        "rows_written": written,
        "stale": figures["stale"],
        "rejected": sum(figures["rejected"].values()),
        "dropped": int(health["samples_dropped"]),
    }
