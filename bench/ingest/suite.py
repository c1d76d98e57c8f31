"""`mes bench ingest`: every ingest figure in one run, in its own scratch database.

Runs the sections in a fixed order (writer throughput and storage, end-to-end latency,
simulator speed, OPC UA, Modbus and MQTT capacity, deadband savings) and returns the figures as
one dictionary; the command line prints it. Two host processes, a simulator and a
collector, are spawned once at the start and reused by every live section.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.ingest import capacity, latency, throughput
from bench.ingest.deadband import deadband_savings
from bench.ingest.hosts import Child, collector_host, simulator_host
from bench.ingest.mqtt import mqtt_capacity
from bench.ingest.plants import process_value_codes, sample_plant, wide_plant
from bench.ingest.scratch import ScratchDatabase, local_cluster, scratch_database
from ingest.simulator.tagmap import simulator_tag_map
from ingest.store import load_signal_map
from mes.settings import get_settings
from transactional.plant_file import PlantDefinition

Progress = Callable[[str], None]

PUBLISHING_INTERVAL_MS = 50
FLUSH_SECONDS = 0.05
MODBUS_POLL_INTERVAL_MS = 10
TICK_SECONDS = 0.1


@dataclass(frozen=True)
class BenchSizes:
    rows: int = 3_000_000
    rounds: int = 5
    signals: int = 1000
    executemany_rows: int = 100_000
    latency_rates: tuple[int, ...] = (5000, 1000)
    latency_seconds: float = 10.0
    latency_discard_seconds: float = 1.0
    opcua_rates: tuple[int | None, ...] = (5000, 10_000, 20_000, 40_000, None)
    opcua_step_seconds: float = 3.0
    wide_machines: int = 20
    wide_values_per_machine: int = 50
    modbus_seconds: float = 5.0
    speeds: tuple[float, ...] = (10, 30, 100, 300)
    speed_seconds: float = 3.0
    deadband_simulated_seconds: float = 3600.0
    deadband_percents: tuple[float, ...] = (0.5, 1.0)
    mqtt_messages: int = 100_000
    seed: int = 0


QUICK = BenchSizes(
    rows=50_000, rounds=1, executemany_rows=5_000, latency_rates=(5000, 1000),
    latency_seconds=2.0, latency_discard_seconds=1.0, opcua_rates=(2_000, 5_000),
    opcua_step_seconds=1.0, wide_machines=4, wide_values_per_machine=25, modbus_seconds=1.0,
    speeds=(10, 30), speed_seconds=1.0, deadband_simulated_seconds=300.0,
    mqtt_messages=5_000)


def sizes_for(quick: bool, rows: int | None, rounds: int | None) -> BenchSizes:
    sizes = QUICK if quick else BenchSizes()
    if rows is not None:
        sizes = dataclasses.replace(sizes, rows=rows)
    if rounds is not None:
        sizes = dataclasses.replace(sizes, rounds=rounds)
    return sizes


def run_ingest_bench(sizes: BenchSizes, progress: Progress) -> dict[str, Any]:
    """All figures of the ingest path, measured in a scratch database dropped afterwards."""
    throughput.check_rows(sizes.rows, sizes.signals)
    cluster = local_cluster()
    role = get_settings().collect_role  # the writers act as `mes collect` does
    plant = sample_plant()
    wide = wide_plant(plant, sizes.wide_machines, sizes.wide_values_per_machine)
    results: dict[str, Any] = {"sizes": dataclasses.asdict(sizes)}
    started = time.monotonic()
    # Spawned first: their imports overlap with making the workload.
    simulator = Child("simulator", simulator_host)
    collector = Child("collector", collector_host)
    try:
        with (scratch_database(cluster, wide) as database,
              tempfile.TemporaryDirectory(prefix="mes-bench-collect-") as folder):
            try:
                progress(f"scratch database {database.name}; writer throughput, "
                         f"{sizes.rows:,} rows of {sizes.signals} signals, "
                         f"{sizes.rounds} round(s)")
                results["database"] = database.name
                workload = throughput.make_workload(sizes.rows, sizes.signals)
                # Millions of pre-built samples are no part of a collector's heap: frozen,
                # the cyclic garbage collector does not walk them during the timed runs.
                gc.freeze()
                try:
                    results["throughput"], results["storage"] = throughput.measure(
                        database, workload, sizes.rounds, sizes.executemany_rows, role,
                        progress)
                finally:
                    gc.unfreeze()
                del workload
                gc.collect()
                simulator.wait_ready()
                collector.wait_ready()
                _live_sections(database, role, plant, wide, sizes, simulator, collector,
                               Path(folder), results, progress)
            finally:
                # The hosts let go of the database and their folders before both go.
                collector.close()
                simulator.close()
    finally:
        collector.close()
        simulator.close()
    progress(f"deadband savings over {sizes.deadband_simulated_seconds:,.0f} simulated s")
    results["deadband"] = deadband_savings(plant, sizes.seed, sizes.deadband_simulated_seconds,
                                           TICK_SECONDS, sizes.deadband_percents)
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def _live_sections(database: ScratchDatabase, role: str, plant: PlantDefinition,
                   wide: PlantDefinition, sizes: BenchSizes, simulator: Child,
                   collector: Child, folder: Path, results: dict[str, Any],
                   progress: Progress) -> None:
    def collect(tag_map: str, name: str) -> None:
        collector.call("collect", url=database.url, tag_map=tag_map,
                       directory=str(folder / name), flush_seconds=FLUSH_SECONDS, role=role)

    with psycopg.connect(database.url) as conn:
        signal_map = load_signal_map(conn)
    sample_values = {code: signal_map[code].signal_id for code in process_value_codes(plant)}

    progress("end-to-end latency: simulator -> OPC UA -> collector -> database")
    ports = simulator.call("serve", plant=plant, opcua=True, modbus=False, seed=sizes.seed,
                           tick_seconds=TICK_SECONDS)
    collect(simulator_tag_map(
        plant, opcua_port=ports["opcua_port"], protocols=("opcua",),
        publishing_interval_ms=PUBLISHING_INTERVAL_MS), "sample")
    time.sleep(0.5)  # the subscription's first values are stored before the drive
    runs = []
    for rate in sizes.latency_rates:
        run = latency.measure_rate(database.url, simulator, sample_values, rate,
                                   sizes.latency_seconds, sizes.latency_discard_seconds)
        progress(f"  {rate:,}/s: p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, "
                 f"{run['written']} written, {run['seen']} seen")
        runs.append(run)
    results["latency"] = {"runs": runs, "target_p99_ms": latency.LATENCY_TARGET_P99_MS,
                          "publishing_interval_ms": PUBLISHING_INTERVAL_MS,
                          "flush_seconds": FLUSH_SECONDS}

    progress("simulator speed one collector keeps up with (whole sample plant, OPC UA)")
    speeds = capacity.simulator_speeds(database.url, simulator, collector,
                                       list(sample_values.values()), list(sizes.speeds),
                                       sizes.speed_seconds, TICK_SECONDS)
    for step in speeds["steps"]:
        progress(f"  speed {step['speed']:g}: {step['served_per_second']:,.0f} changes/s, "
                 f"{'keeps up' if step['keeps_up'] else 'falls behind'}")
    collector.call("finish", timeout=120)

    progress("OPC UA notifications one collector takes")
    wide_codes = process_value_codes(wide, wide_only=True)
    ports = simulator.call("serve", plant=wide, opcua=True, modbus=False, seed=sizes.seed,
                           tick_seconds=TICK_SECONDS)
    collect(simulator_tag_map(
        wide, opcua_port=ports["opcua_port"], protocols=("opcua",),
        publishing_interval_ms=PUBLISHING_INTERVAL_MS), "wide")
    opcua = capacity.opcua_notifications(simulator, collector, wide_codes,
                                         list(sizes.opcua_rates), sizes.opcua_step_seconds)
    for step in opcua["steps"]:
        offered = "flat out" if step["offered_rate"] is None else f"{step['offered_rate']:,}/s"
        progress(f"  {offered}: received {step['received_per_second']:,.0f}/s, "
                 f"{'keeps up' if step['keeps_up'] else 'falls behind'}")
    collector.call("finish", timeout=120)

    progress("Modbus reads one collector makes")
    ports = simulator.call("serve", plant=plant, opcua=False, modbus=True, seed=sizes.seed,
                           tick_seconds=TICK_SECONDS, ticking=True)
    collect(simulator_tag_map(
        plant, modbus_port=ports["modbus_port"], protocols=("modbus",),
        poll_interval_ms=MODBUS_POLL_INTERVAL_MS), "modbus")
    modbus = capacity.modbus_reads(collector, len(plant.machines), MODBUS_POLL_INTERVAL_MS,
                                   sizes.modbus_seconds)
    progress(f"  {modbus['requests_per_second']:,.0f} requests/s")
    collector.call("finish", timeout=120)
    simulator.call("close")

    progress(f"MQTT messages one collector takes: a backlog of {sizes.mqtt_messages:,} "
             "Sparkplug B messages, beside a subscriber that only counts")
    mqtt = mqtt_capacity(collector, wide, database.url, role, folder / "mqtt",
                         sizes.mqtt_messages)
    progress(f"  raw {mqtt['raw_messages_per_second']:,.0f} messages/s, collector "
             f"{mqtt['collector_messages_per_second']:,.0f} messages/s "
             f"({mqtt['collector_metrics_per_second']:,.0f} metrics/s)")
    results["capacity"] = {"opcua": opcua, "modbus": modbus, "speed": speeds, "mqtt": mqtt}
