"""The Simulator: ticking against the wall clock, recording what it served, refusing bad values."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import pytest

from ingest.simulator.layout import COUNTER_MODULUS
from ingest.simulator.runner import Simulator
from transactional.plant_file import PlantDefinition


def test_speed_compresses_simulated_time(plant: PlantDefinition) -> None:
    async def scenario() -> float:
        async with Simulator(plant, opcua_port=None, modbus_port=0, speed=50,
                             tick_seconds=0.1) as simulator:
            await asyncio.sleep(0.5)
            return simulator.model.time

    simulated = asyncio.run(scenario())
    assert 15.0 <= simulated <= 26.0


def test_history_holds_every_served_value_and_pause_holds_the_model(
        plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, opcua_port=None, modbus_port=0, record=True,
                             tick_seconds=0.02) as simulator:
            signals = set(simulator.model.signals)
            assert {code for code, _, _ in simulator.history} == signals
            await asyncio.sleep(0.2)
            simulator.pause()
            await asyncio.sleep(0.03)
            paused_at, served = simulator.model.time, len(simulator.history)
            await asyncio.sleep(0.1)
            assert (simulator.model.time, len(simulator.history)) == (paused_at, served)
            moment = dt.datetime(2026, 1, 5, 6, 0, tzinfo=dt.UTC)
            await simulator.write("OVEN-1.temperature", 180.25, moment)
            assert simulator.history[-1] == ("OVEN-1.temperature", moment, 180.25)
            assert simulator.modbus is not None
            simulator.resume()
            await asyncio.sleep(0.1)
            assert simulator.model.time > paused_at
            times = [when for _, when, _ in simulator.history if when != moment]
            assert times == sorted(times)
            assert all(when.tzinfo is dt.UTC for when in times)
            # What the server serves now is the last value recorded for each signal.
            simulator.pause()
            last = {code: value for code, _, value in simulator.history}
            assert last == {c.signal_code: c.value for c in simulator.model.values()}

    asyncio.run(scenario())


def test_reset_counters_is_served_on_the_next_tick(plant: PlantDefinition) -> None:
    async def scenario() -> None:
        async with Simulator(plant, opcua_port=None, modbus_port=0, record=True,
                             counter_start=5000, tick_seconds=0.02) as simulator:
            await asyncio.sleep(0.05)
            simulator.reset_counters("PRESS-1")
            await asyncio.sleep(0.1)
            simulator.pause()
            assert simulator.modbus is not None
            press_1, press_2 = simulator.modbus.registers(1), simulator.modbus.registers(2)
            # Big word order: registers 2-3 are the good count, 4-5 the reject count.
            assert press_1[2] << 16 | press_1[3] < 10 and press_1[4] << 16 | press_1[5] < 10
            assert press_2[2] << 16 | press_2[3] >= 5000

    asyncio.run(scenario())


def test_write_refuses_values_that_do_not_fit(plant: PlantDefinition) -> None:
    simulator = Simulator(plant, opcua_port=None, modbus_port=None)

    async def refused(code: str, value: int | float, when: dt.datetime | None = None) -> str:
        with pytest.raises(ValueError) as error:
            await simulator.write(code, value, when)
        return str(error.value)

    async def scenario() -> None:
        assert "no signal 'PRESS-1.pressure'" in await refused("PRESS-1.pressure", 1.0)
        assert "outside 0..4294967295" in await refused("PRESS-1.good", COUNTER_MODULUS)
        assert "outside" in await refused("PRESS-1.reject", -1)
        assert "not a whole number" in await refused("PRESS-1.state", 1.5)
        assert "outside 0..65535" in await refused("PRESS-1.fault_code", 70_000)
        assert "32-bit float" in await refused("PRESS-1.speed", float("nan"))
        assert "32-bit float" in await refused("PRESS-1.speed", 1e39)
        assert "time zone" in await refused("PRESS-1.speed", 1.0, dt.datetime(2026, 1, 1))

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="speed"):
        Simulator(plant, speed=0)
    with pytest.raises(ValueError, match="word order"):
        Simulator(plant, word_order="middle")


def test_a_taken_port_is_reported_and_nothing_is_left_running(
        plant: PlantDefinition) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def scenario() -> None:
            simulator = Simulator(plant, opcua_port=None, modbus_port=port)
            with pytest.raises(OSError, match=f"Modbus TCP at 127.0.0.1:{port}"):
                await simulator.start()
            assert simulator.modbus is not None and not simulator.modbus.running
            with pytest.raises(RuntimeError, match="without OPC UA"):
                await simulator.start_opcua()

        asyncio.run(scenario())
