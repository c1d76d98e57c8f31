"""The tools a controls engineer reaches for: `mes opcua browse` against the project's
simulator and against a server laid out differently, and `mes collect --check`."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
from asyncua import ua
from asyncua.server.server import Server
from typer.testing import CliRunner

from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from ingest.tagmap import read_tag_map, read_tag_map_file
from mes.cli import app
from tests.ingest.collecting import in_event_loop, load_sample_plant

pytestmark = pytest.mark.slow


async def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    # The command runs its own event loop: in a thread, beside the servers of this one.
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output


@contextlib.asynccontextmanager
async def _other_server() -> AsyncIterator[str]:
    """An OPC UA server not written by this project: two namespaces (so its variables are in
    ns=3), numeric node ids, folders two levels deep, a string variable among numbers."""
    server = Server()
    await server.init()
    server.set_endpoint("opc.tcp://127.0.0.1:0/vendor/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.register_namespace("urn:vendor:types")
    namespace = await server.register_namespace("urn:vendor:plant")
    assert namespace == 3

    def node(number: int) -> ua.NodeId:
        return ua.NodeId.from_string(f"ns={namespace};i={number}")

    line = await server.nodes.objects.add_folder(node(100), "Line1")
    filler = await line.add_object(node(200), "Filler")
    await filler.add_variable(node(5001), "Temperature", 21.5,
                              ua.VariantType.Float)
    await filler.add_variable(node(5002), "Count", 1234, ua.VariantType.UInt32)
    await filler.add_variable(node(5003), "Recipe", "R-7",
                              ua.VariantType.String)
    await server.start()
    try:
        assert server.bserver is not None
        yield f"opc.tcp://127.0.0.1:{server.bserver.port}/vendor/"
    finally:
        await server.stop()


@in_event_loop
async def test_browse_lists_a_foreign_servers_variables_with_their_real_node_ids() -> None:
    async with _other_server() as endpoint:
        code, output = await _invoke("opcua", "browse", endpoint, "--depth", "3")
        assert code == 0, output
        lines = {line.split()[0]: line.split()[1:] for line in output.splitlines()[1:]}
        assert lines["ns=3;i=5001"] == ["Line1/Filler/Temperature", "Float", "21.5"]
        assert lines["ns=3;i=5002"] == ["Line1/Filler/Count", "UInt32", "1234"]
        assert lines["ns=3;i=5003"] == ["Line1/Filler/Recipe", "String", "R-7"]
        assert not any(node.startswith("i=") for node in lines)  # the standard ns 0 is left out
        # Too shallow to reach the variables.
        code, output = await _invoke("opcua", "browse", endpoint, "--depth", "2")
        assert "no variables found" in output


@in_event_loop
async def test_browse_the_simulator_and_its_stub_is_a_tag_map_that_resolves(
        db_url: str, tmp_path: Path) -> None:
    plant, signals = load_sample_plant(db_url)
    async with Simulator(plant, opcua_port=0, modbus_port=None) as simulator:
        simulator.pause()
        await simulator.write("PRESS-1.temperature", 42.25)
        assert simulator.opcua_endpoint is not None
        code, output = await _invoke("opcua", "browse", simulator.opcua_endpoint)
        assert code == 0, output
        [line] = [line for line in output.splitlines()
                  if line.startswith("ns=2;s=PRESS-1.temperature ")]
        assert line.split()[1:] == ["PRESS-1/Temperature", "Double", "42.25"]
        code, stub = await _invoke("opcua", "browse", simulator.opcua_endpoint,
                                   "--tag-map-stub", "--name", "line-1")
    assert code == 0, stub
    path = tmp_path / "stub.toml"
    path.write_text(stub)
    parsed = read_tag_map_file(path)
    assert parsed.opcua[0].name == "line-1"
    # The simulator's string node ids are the signal codes: the stub resolves, fault codes
    # (no plant signals) apart.
    path.write_text("\n".join(line for line in stub.splitlines() if "fault_code" not in line))
    tag_map = read_tag_map(path, signals)
    assert tag_map.signal_count == len(signals)


@in_event_loop
async def test_collect_check_reads_every_address_once_and_stores_nothing(
        db_url: str, tmp_path: Path) -> None:
    plant, _ = load_sample_plant(db_url)
    env = {"MES_DATABASE_URL": db_url}
    directory = tmp_path / "collect"
    async with Simulator(plant, opcua_port=0, modbus_port=0) as simulator:
        simulator.pause()
        await simulator.write("PRESS-1.temperature", 42.25)
        good = tmp_path / "good.toml"
        good.write_text(simulator_tag_map(
            plant, opcua_port=simulator.opcua_port or 0, modbus_port=simulator.modbus_port or 0,
            protocols=("opcua",)))
        code, output = await _invoke("collect", "--check", "--tag-map", str(good),
                                     "--dir", str(directory), env=env)
        assert code == 0, output
        [line] = [line for line in output.splitlines() if line.startswith("PRESS-1.temperature ")]
        assert line.split() == ["PRESS-1.temperature", "simulator-opcua",
                                "ns=2;s=PRESS-1.temperature", "42.25", "good"]
        assert output.splitlines()[-1] == "56 addresses read, all good"  # 48 + 8 reasons

        bad = tmp_path / "bad.toml"
        bad.write_text(f"""
[[opcua]]
name = "press"
endpoint = "{simulator.opcua_endpoint}"
nodes = [
  {{ signal = "PRESS-1.temperature", node = "ns=2;s=PRESS-1.temperature" }},
  {{ signal = "PRESS-1.speed", node = "ns=2;s=PRESS-1.no-such-node" }},
]

[[modbus]]
name = "press-2"
host = "127.0.0.1"
port = {simulator.modbus_port}
unit = 2
registers = [
  {{ signal = "PRESS-2.good", address = 2, type = "uint32" }},
  {{ signal = "PRESS-2.temperature", address = 500, type = "float32" }},
]

[[modbus]]
name = "nobody"
host = "127.0.0.1"
port = 1
timeout_ms = 300
registers = [{{ signal = "OVEN-1.temperature", address = 6, type = "float32" }}]
""")
        started = dt.datetime.now(dt.UTC)
        code, output = await _invoke("collect", "--check", "--tag-map", str(bad),
                                     "--dir", str(directory), env=env)
    assert code == 1, output
    rows = {line.split()[0]: line for line in output.splitlines()}
    assert rows["PRESS-1.temperature"].endswith("good")
    assert "BadNodeIdUnknown" in rows["PRESS-1.speed"]
    assert rows["PRESS-2.good"].split()[4:6] == ["0", "good"]
    assert "exception code 2" in rows["PRESS-2.temperature"]
    assert "cannot connect to 127.0.0.1:1" in rows["OVEN-1.temperature"]
    assert output.splitlines()[-1] == "5 addresses read, 3 failed"
    assert (dt.datetime.now(dt.UTC) - started).total_seconds() < 10
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT (SELECT count(*) FROM ts.process_value) + "
                              "(SELECT count(*) FROM ts.equipment_state) + "
                              "(SELECT count(*) FROM ts.production_count)").fetchone()
    assert stored == (0,)
    assert not directory.exists()
