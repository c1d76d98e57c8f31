"""What a plant meets past the first day, through real OPC UA and Modbus servers: counters that
come back wrong, unknown state codes, collection gaps, and how fast collection recovers.

The line simulator serves both protocols; it is paused, and each test writes the values it
needs, waiting for the collector to have read each one before the next.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from ingest.collect import Collection
from ingest.modbus import ModbusCollector
from ingest.opcua import OpcUaCollector
from ingest.simulator.layout import fault_code_signal, modbus_units, register_map
from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import node_id
from mes.cli import app
from tests.ingest.collecting import (
    collecting,
    collector_status,
    eventually,
    in_event_loop,
    load_sample_plant,
    start_collect,
    stored_counts,
    stored_states,
    tag_map_from,
)
from transactional.plant_file import PlantDefinition

pytestmark = pytest.mark.slow

TOP = 2**32 - 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _machine_tags(plant: PlantDefinition, simulator: Simulator, protocol: str,
                  machines: tuple[str, ...], *, poll_ms: int = 50, extra: str = "") -> str:
    """A tag map of some machines of the simulator through one protocol."""
    if protocol == "opcua":
        nodes = []
        for machine in (m for m in plant.machines if m.code in machines):
            for signal in machine.signals:
                reason = (f', reason_node = "{node_id(fault_code_signal(machine.code))}"'
                          if signal.kind == "state" else "")
                nodes.append(f'  {{ signal = "{signal.code}", node = "{node_id(signal.code)}"'
                             f'{reason} }},')
        return (f'[[opcua]]\nname = "opcua"\nendpoint = "{simulator.opcua_endpoint}"\n'
                f"publishing_interval_ms = 50\nnodes = [\n" + "\n".join(nodes) + "\n]\n")
    units = modbus_units(plant)
    sections = []
    for machine in (m for m in plant.machines if m.code in machines):
        layout = register_map(machine)
        registers = []
        for signal in machine.signals:
            register = layout[signal.code]
            reason = (f", reason_address = {layout[fault_code_signal(machine.code)].address}"
                      if signal.kind == "state" else "")
            registers.append(f'  {{ signal = "{signal.code}", address = {register.address}, '
                             f'type = "{register.type}"{reason} }},')
        sections.append(
            f'[[modbus]]\nname = "{machine.code}"\nhost = "127.0.0.1"\n'
            f"port = {simulator.modbus_port}\nunit = {units[machine.code]}\n"
            f"poll_interval_ms = {poll_ms}\ntimeout_ms = 300\n{extra}"
            "registers = [\n" + "\n".join(registers) + "\n]\n")
    return "\n".join(sections)


def _latest(collection: Collection, code: str) -> float | None:
    collectors: list[OpcUaCollector | ModbusCollector] = [*collection.opcua,
                                                          *collection.modbus]
    for collector in collectors:
        for reading in collector.latest_readings():
            if reading.binding.signal.code == code:
                return reading.value
    return None


async def _serve_and_wait(simulator: Simulator, collection: Collection, code: str,
                          value: int | float) -> None:
    await simulator.write(code, value)
    await eventually(lambda: _latest(collection, code) == value, 10,
                     f"the collector read {code} = {value}")


def _query(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def _discontinuities(url: str) -> list[tuple[str, int, int, str, int]]:
    return [tuple(row) for row in _query(
        url, "SELECT s.code, d.old_value, d.new_value, d.decision, d.counted "
             "FROM ts.counter_discontinuity d JOIN mes.signal s ON s.id = d.signal_id "
             "ORDER BY d.ts")]


def _gaps(url: str) -> list[tuple[str, str, dt.datetime, dt.datetime | None, str]]:
    return [tuple(row) for row in _query(
        url, "SELECT e.code, g.source, g.gap_start, g.gap_end, g.cause "
             "FROM ts.collection_gap g JOIN mes.equipment e ON e.id = g.equipment_id "
             "ORDER BY g.gap_start, e.code")]


# --- counters and states --------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
@in_event_loop
async def test_rollover_reset_and_rebase_are_decided_recorded_and_counted(
        protocol: str, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=0, modbus_port=0) as simulator:
        simulator.pause()
        # What the counters show when collection starts: the baselines.
        await simulator.write("PRESS-1.good", TOP - 1)
        await simulator.write("PRESS-1.reject", 70_068)
        tag_map = tag_map_from(_machine_tags(plant, simulator, protocol, ("PRESS-1",)),
                               tmp_path, signals)
        with caplog.at_level(logging.WARNING, logger="mes.ingest"):
            async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
                await eventually(lambda: _latest(collection, "PRESS-1.reject") == 70_068, 15,
                                 "the baselines were read")
                for good in (TOP, 0, 1, 3, 1):  # rollover at 0, reset at the last 1
                    await _serve_and_wait(simulator, collection, "PRESS-1.good", good)
                # The device comes back at a retained value below the last one: no phantom
                # 70,000 parts, the new value is the baseline.
                for reject in (70_000, 70_001):
                    await _serve_and_wait(simulator, collection, "PRESS-1.reject", reject)
                await eventually(lambda: len(_discontinuities(db_url)) == 3, 10,
                                 "three discontinuities recorded")
                await eventually(lambda: stored_counts(db_url).get("PRESS-1") == (6, 1), 10,
                                 "the parts counted")
                health = collection.health
                await eventually(lambda: health.counter_discontinuities == {
                    "rollover": 1, "reset": 1, "rebase": 1}, 5, "counted in the status")
    shown = CliRunner().invoke(app, ["collect", "status", "--dir", str(tmp_path / "collect")])
    assert "counter discontinuities: 1 rebase, 1 reset, 1 rollover" in shown.output
    assert _discontinuities(db_url) == [
        ("PRESS-1.good", TOP, 0, "rollover", 1),
        ("PRESS-1.good", 3, 1, "reset", 1),
        ("PRESS-1.reject", 70_068, 70_000, "rebase", 0),
    ]
    # 1 + 1 (across the top) + 1 + 2 + 1 (since the reset) good; 1 reject after the re-base.
    assert stored_counts(db_url) == {"PRESS-1": (6, 1)}
    logged = [r.getMessage() for r in caplog.records if "counter went from" in r.getMessage()]
    assert len(logged) == 3, logged
    assert any("70068 to 70000" in line and "nothing counted" in line for line in logged)


@in_event_loop
async def test_an_unknown_state_code_is_stored_marked_counted_and_warned_once(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=None, modbus_port=0) as simulator:
        simulator.pause()
        await simulator.write("PRESS-1.state", 1)
        tag_map = tag_map_from(_machine_tags(plant, simulator, "modbus", ("PRESS-1",)),
                               tmp_path, signals)
        with caplog.at_level(logging.WARNING, logger="mes.ingest"):
            async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
                for state in (1, 99, 1, 99, 5):
                    await _serve_and_wait(simulator, collection, "PRESS-1.state", state)
                await eventually(lambda: len(stored_states(db_url)["PRESS-1"]) == 5, 10,
                                 "five state changes stored")
                await eventually(lambda: collection.health.unknown_states == {"PRESS-1 99": 2},
                                 5, "counted in the status")
    shown = CliRunner().invoke(app, ["collect", "status", "--dir", str(tmp_path / "collect")])
    assert "unknown state codes: machine PRESS-1 code 99 (2 readings)" in shown.output
    assert [state for _, state, _ in stored_states(db_url)["PRESS-1"]] == [1, 99, 1, 99, 5]
    marked = _query(db_url, "SELECT s.state FROM ts.unknown_state u JOIN ts.equipment_state s "
                            "USING (equipment_id, ts) ORDER BY ts")
    assert marked == [(99,), (99,)]
    warned = [r.getMessage() for r in caplog.records if "not in the machine's state model"
              in r.getMessage()]
    assert len(warned) == 1 and "state code 99" in warned[0]


# --- collection gaps ------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
@in_event_loop
async def test_a_lost_source_leaves_a_gap_per_machine_closed_when_data_flows_again(
        protocol: str, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    plant, signals = load_sample_plant(db_url)
    machines = ("PRESS-1", "PRESS-2")
    async with Simulator(plant, speed=5, opcua_port=0, modbus_port=0) as simulator:
        tag_map = tag_map_from(_machine_tags(plant, simulator, protocol, machines),
                               tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            await eventually(lambda: collection.health.rows_written > 20, 15, "collecting")
            down_at = _now()
            if protocol == "opcua":
                await simulator.stop_opcua()
            else:
                await simulator.stop_modbus()
            await eventually(lambda: len(_gaps(db_url)) == 2, 15, "the gaps were opened")
            # (by machine: which machine's loss is noticed first is the scheduler's choice)
            assert sorted((m, end, cause) for m, _, _, end, cause in _gaps(db_url)) == [
                ("PRESS-1", None, "source_lost"), ("PRESS-2", None, "source_lost")]
            await asyncio.sleep(1)
            if protocol == "opcua":
                await simulator.start_opcua()
            else:
                await simulator.start_modbus()
            up_at = _now()  # listening again
            await eventually(lambda: all(g[3] is not None for g in _gaps(db_url)), 15,
                             "the gaps were closed")
    # The clean stop at the end of the block leaves its own (collector_stopped) gaps.
    gaps = sorted(gap for gap in _gaps(db_url) if gap[4] == "source_lost")
    sources = {"opcua": ["opcua", "opcua"], "modbus": ["PRESS-1", "PRESS-2"]}[protocol]
    assert [(m, s, c) for m, s, _, _, c in gaps] == [
        ("PRESS-1", sources[0], "source_lost"), ("PRESS-2", sources[1], "source_lost")]
    for _, _, start, end, _ in gaps:
        assert end is not None
        # From the last sign of life before the loss to the first data after it.
        assert down_at - dt.timedelta(seconds=1.5) <= start <= down_at + dt.timedelta(seconds=1)
        # Recovery time is measured on its own (below); here the gap closes with the data.
        assert up_at <= end <= up_at + dt.timedelta(seconds=10)
    # One line per event, with the source and the reason; nothing from the libraries.
    lines = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.WARNING and r.name.startswith(("mes.ingest.opcua",
                                                                     "mes.ingest.modbus"))]
    if protocol == "opcua":
        assert len([line for line in lines if "lost" in line]) == 1, lines
    else:
        for machine in machines:
            assert len([line for line in lines if line.startswith(f"{machine} (")]) == 1, lines


def _mixed_tags(plant: PlantDefinition, simulator: Simulator) -> str:
    """PRESS-1 over OPC UA, PRESS-2 over Modbus: both collectors in one run."""
    return (_machine_tags(plant, simulator, "opcua", ("PRESS-1",)) + "\n"
            + _machine_tags(plant, simulator, "modbus", ("PRESS-2",)))


@in_event_loop
async def test_a_clean_stop_leaves_open_gaps_that_the_next_start_closes(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plant, signals = load_sample_plant(db_url)
    directory = tmp_path / "collect"
    async with Simulator(plant, speed=5, opcua_port=0, modbus_port=0) as simulator:
        tag_map = tag_map_from(_mixed_tags(plant, simulator), tmp_path, signals)
        async with collecting(tag_map, db_url, directory) as collection:
            await eventually(lambda: collection.health.rows_written > 20, 15, "collecting")
        stopped_at = _now()
        assert sorted((m, s, end, c) for m, s, _, end, c in _gaps(db_url)) == [
            ("PRESS-1", "opcua", None, "collector_stopped"),
            ("PRESS-2", "PRESS-2", None, "collector_stopped")]
        assert all(stopped_at - dt.timedelta(seconds=1) <= g[2] <= stopped_at
                   for g in _gaps(db_url))
        await asyncio.sleep(1)
        with caplog.at_level(logging.INFO, logger="mes.ingest"):
            restarted_at = _now()
            async with collecting(tag_map, db_url, directory) as collection:
                await eventually(lambda: all(g[3] is not None for g in _gaps(db_url)), 15,
                                 "the gaps were closed")
                assert collection.health.open_gaps == {}
    # The second stop opens the next pair.
    gaps = [gap for gap in _gaps(db_url) if gap[2] < restarted_at]
    assert len(gaps) == 2
    for _, _, start, end, _ in gaps:
        assert end is not None and restarted_at <= end <= restarted_at + dt.timedelta(seconds=5)
        assert (end - start).total_seconds() >= 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "opcua: data flows again after a collection gap of" in logged
    assert "(collector stopped since" in logged and "covering PRESS-1" in logged
    assert "PRESS-2: data flows again after a collection gap of" in logged


# --- recovery -------------------------------------------------------------------------

@in_event_loop
async def test_after_an_opcua_server_restart_values_are_stored_within_2_s_at_their_own_time(
        db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=0, modbus_port=None) as simulator:
        simulator.pause()
        tag_map = tag_map_from(_machine_tags(plant, simulator, "opcua", ("PRESS-1",)),
                               tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            collector = collection.opcua[0]
            await eventually(lambda: _latest(collection, "PRESS-1.good") is not None, 15,
                             "subscribed")
            good = int(_latest(collection, "PRESS-1.good") or 0)
            reject = int(_latest(collection, "PRESS-1.reject") or 0)
            await simulator.stop_opcua()
            await eventually(lambda: not collector.connected.is_set(), 15, "the loss noticed")
            await asyncio.sleep(3)  # long enough for any backoff to reach its cap
            # Parts made while the server was down, each stamped by the PLC.
            reject_at = _now()
            await simulator.write("PRESS-1.reject", reject + 1, reject_at)
            await simulator.write("PRESS-1.temperature", 55.5)
            good_at = reject_at + dt.timedelta(milliseconds=600)
            await simulator.write("PRESS-1.good", good + 2, good_at)
            await simulator.start_opcua()
            up_at = time.monotonic()
            await eventually(lambda: bool(_query(
                db_url, "SELECT 1 FROM ts.process_value WHERE value = 55.5")), 10,
                "the value written while down is stored")
            recovery = time.monotonic() - up_at
    with capsys.disabled():
        print(f"\nOPC UA server back -> first value stored: {recovery:.2f} s")
    assert recovery < 2.0
    counts = _query(db_url, "SELECT ts, good, reject FROM ts.production_count ORDER BY ts")
    assert counts == [(reject_at, 0, 1), (good_at, 2, 0)]


@in_event_loop
async def test_modbus_changes_only_with_a_heartbeat(db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=None, modbus_port=0) as simulator:
        simulator.pause()
        await simulator.write("PRESS-1.temperature", 40.0)
        tags = _machine_tags(plant, simulator, "modbus", ("PRESS-1",),
                             extra="heartbeat_seconds = 1.0\n")
        tags = tags.replace('type = "float32" }', 'type = "float32", deadband = 0 }')
        tag_map = tag_map_from(tags, tmp_path, signals)
        async with collecting(tag_map, db_url, tmp_path / "collect") as collection:
            started = time.monotonic()
            await eventually(lambda: time.monotonic() - started > 2.5, 5, "2.5 s of polls")
            await _serve_and_wait(simulator, collection, "PRESS-1.temperature", 41.0)
            polls = collection.modbus[0].polls
            await asyncio.sleep(0.2)
    rows = _query(db_url, "SELECT p.value FROM ts.process_value p JOIN mes.signal s "
                          "ON s.id = p.signal_id WHERE s.code = 'PRESS-1.temperature' "
                          "ORDER BY p.ts")
    values = [value for (value,) in rows]
    shown = CliRunner().invoke(app, ["collect", "status", "--signals",
                                     "--dir", str(tmp_path / "collect")])
    [line] = [line for line in shown.output.splitlines() if "PRESS-1.temperature" in line]
    assert line.split()[1:3] == ["41", "good"] and "PRESS-1 holding:6" in line
    assert polls > 40
    # The first reading, one heartbeat a second while unchanged, and the change.
    assert values[0] == 40.0 and values[-1] == 41.0
    assert 3 <= len(values) <= 5, values
    assert set(values[:-1]) == {40.0}





@in_event_loop
async def test_after_kill_9_the_next_start_records_the_crash_gap_from_the_last_durable_write(
        db_url: str, tmp_path: Path) -> None:
    plant, _ = load_sample_plant(db_url)
    directory = tmp_path / "collect"
    async with Simulator(plant, speed=5, opcua_port=0, modbus_port=0) as simulator:
        tag_map = tmp_path / "tags.toml"
        tag_map.write_text(_mixed_tags(plant, simulator))
        process = await start_collect(tag_map, directory, db_url)
        await eventually(lambda: collector_status(directory).get("rows_written", 0) > 100, 30,
                         "rows written")
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.communicate(), 30)
        killed_at = _now()
        assert _gaps(db_url) == []  # a crash leaves no record of its own
        await asyncio.sleep(1)

        process = await start_collect(tag_map, directory, db_url)
        await eventually(lambda: len(_gaps(db_url)) == 2
                         and all(g[3] is not None for g in _gaps(db_url)), 30,
                         "the crash gaps recorded and closed")
        restarted = _now()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    log = stderr.decode()
    assert process.returncode == 0, log
    crashed = sorted(g for g in _gaps(db_url) if g[4] == "collector_crashed")
    assert [(m, s) for m, s, *_ in crashed] == [("PRESS-1", "opcua"), ("PRESS-2", "PRESS-2")]
    for _, _, start, end, _ in crashed:
        # From the last batch stored before the kill to the first data after the restart.
        assert killed_at - dt.timedelta(seconds=2) <= start <= killed_at
        assert end is not None and killed_at + dt.timedelta(seconds=1) <= end <= restarted
    assert "did not stop cleanly; collection gaps from its last durable write" in log
    assert "opcua since" in log and "(PRESS-1)" in log and "PRESS-2 since" in log
    assert "opcua: data flows again after a collection gap of" in log
    assert "(collector crashed since" in log
    # One line per event: no library tracebacks, no line twice.
    assert "Traceback" not in log
    lines = [line.split(" ", 2)[-1] for line in log.splitlines()]
    assert len(lines) == len(set(lines)), log
