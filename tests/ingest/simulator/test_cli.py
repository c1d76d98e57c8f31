"""`mes simulate`: serves until SIGTERM, writes a tag map naming the ports it bound."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from typer.testing import CliRunner

from mes.cli import app
from tests.conftest import REPO


@pytest.mark.slow
def test_simulate_serves_until_terminated_and_writes_the_tag_map(tmp_path: Path) -> None:
    tag_map = tmp_path / "simulator.toml"
    process = subprocess.Popen(
        [sys.executable, "-m", "mes.cli", "simulate", "--opcua-port", "0", "--modbus-port", "0",
         "--seed", "3", "--speed", "5", "--word-order", "little", "--tag-map-out", str(tag_map),
         "--tag-map-protocol", "modbus"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("simulating 8 machines of ACME (seed 3, speed x5)"), line
        parsed = tomllib.loads(tag_map.read_text())
        assert set(parsed) == {"modbus"}
        device = parsed["modbus"][0]
        assert device["word_order"] == "little" and device["port"] != 0
        assert f"Modbus TCP 127.0.0.1:{device['port']} units 1-8" in line

        async def read_state() -> list[int]:
            client = AsyncModbusTcpClient("127.0.0.1", port=device["port"])
            await client.connect()
            try:
                response = await client.read_holding_registers(0, count=6, device_id=1)
                return list(response.registers)
            finally:
                client.close()

        assert asyncio.run(read_state())[0] in {1, 2, 3, 5}
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_bad_options_are_reported_without_a_traceback() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--word-order", "middle"])
    assert result.exit_code == 1
    assert "word order 'middle'" in result.output
    result = runner.invoke(app, ["simulate", "--tag-map-protocol", "profibus"])
    assert result.exit_code == 1
    assert "tag map protocol 'profibus'" in result.output
    result = runner.invoke(app, ["simulate", "--modbus-port", "70000"])
    assert result.exit_code == 1
    assert "Modbus port 70000" in result.output
