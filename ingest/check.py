"""`mes collect --check`: reads every node and register of a tag map once and says how it went.

Each OPC UA server and Modbus device is connected to once; each address is read once and
its value decoded as the collectors would. On an MQTT broker (in a session of its own,
never the collector's) each Sparkplug B edge node is asked for its births, which carry every
metric's value, and each JSON topic's next (or retained) message is read. Nothing is stored
and no collector runs: it is the check a controls engineer makes before starting collection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ingest import sparkplug
from ingest.broker import BrokerAddress, BrokerError, Connection
from ingest.modbus import decode
from ingest.mqtt import lookup
from ingest.opcua import quality_of
from ingest.tagmap import ResolvedModbus, ResolvedMqtt, ResolvedOpcUa, TagMap


@dataclass(frozen=True)
class CheckedAddress:
    signal: str
    source: str
    address: str
    value: str
    status: str
    ok: bool


def _shown(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _why(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


async def check_tag_map(tag_map: TagMap, timeout: float = 5.0) -> list[CheckedAddress]:
    """One line per address of the tag map (reason nodes and registers included)."""
    results = await asyncio.gather(
        *(_check_opcua(source, timeout) for source in tag_map.opcua),
        *(_check_modbus(device) for device in tag_map.modbus),
        *(_check_mqtt(source, timeout) for source in tag_map.mqtt))
    return [line for lines in results for line in lines]


async def _check_opcua(source: ResolvedOpcUa, timeout: float) -> list[CheckedAddress]:
    name = source.source.name
    addresses: list[tuple[str, str, str]] = [(node_id, binding.signal.code, binding.kind)
                                             for node_id, binding in source.nodes.items()]
    addresses += [(node_id, f"{signal.code} (reason)", "reason")
                  for node_id, signal in source.reason_nodes.items()]
    try:
        async with Client(source.source.endpoint, timeout=timeout) as client:
            values = await client.uaclient.read_attributes(
                [ua.NodeId.from_string(node_id) for node_id, _, _ in addresses],
                AttributeIds.Value)
    except Exception as exc:  # any failure to connect or read: every address fails
        why = f"cannot read from {source.source.endpoint}: {_why(exc)}"
        return [CheckedAddress(signal, name, node_id, "-", why, False)
                for node_id, signal, _ in addresses]
    lines = []
    for (node_id, signal, kind), data_value in zip(addresses, values, strict=True):
        raw = data_value.Value.Value if data_value.Value is not None else None
        status = data_value.StatusCode
        number = isinstance(raw, int | float) and not isinstance(raw, bool)
        if status is not None and not status.is_good():
            ok, text = False, f"{status.name} ({quality_of(status).name.lower()})"
        elif not number:
            ok, text = False, f"not a number: {type(raw).__name__}"
        elif kind in ("good_count", "reject_count", "state", "reason") and (
                raw != int(raw or 0) or raw < 0):
            ok, text = False, f"not a whole number >= 0 for a {kind} signal"
        else:
            ok, text = True, "good"
        lines.append(CheckedAddress(signal, name, node_id, _shown(raw) if number else "-",
                                    text, ok))
    return lines


async def _check_modbus(device: ResolvedModbus) -> list[CheckedAddress]:
    settings = device.device
    timeout = settings.timeout_ms / 1000
    lines: list[CheckedAddress] = []
    client = AsyncModbusTcpClient(settings.host, port=settings.port, timeout=timeout,
                                  retries=0, reconnect_delay=0)
    try:
        try:
            async with asyncio.timeout(timeout):
                connected = await client.connect()
        except TimeoutError:
            connected = False
        for read in device.reads:
            last = read.start + read.count - 1
            where = f"unit {settings.unit} {read.function} registers {read.start}-{last}"
            failure: str | None = None
            registers: list[int] = []
            if not connected:
                failure = f"cannot connect to {settings.host}:{settings.port}"
            else:
                call = (client.read_holding_registers if read.function == "holding"
                        else client.read_input_registers)
                try:
                    async with asyncio.timeout(timeout):
                        response = await call(read.start, count=read.count,
                                              device_id=settings.unit)
                    if response.isError():
                        failure = (f"exception code {getattr(response, 'exception_code', '?')}"
                                   f" for {where}")
                    else:
                        registers = list(response.registers)
                except TimeoutError:
                    failure = f"no answer within {settings.timeout_ms} ms"
                except (ModbusException, ConnectionError, OSError) as exc:
                    failure = _why(exc)
            for fld in read.fields:
                address = f"{fld.binding.address} ({fld.type})"
                if failure is not None:
                    lines.append(CheckedAddress(fld.binding.signal.code, settings.name, address,
                                                "-", failure, False))
                    continue
                value = decode(registers, fld)
                shown = _shown(value)
                if fld.reason_offset is not None:
                    shown += f" (reason {registers[fld.reason_offset]})"
                lines.append(CheckedAddress(
                    fld.binding.signal.code, settings.name, address, shown,
                    "good" if value is not None else "not a number (NaN or infinity)",
                    value is not None))
    finally:
        client.close()
    return lines


async def _check_mqtt(resolved: ResolvedMqtt, timeout: float) -> list[CheckedAddress]:
    source = resolved.source
    # (topic of the value, metric or path) -> (signal, shown address)
    wanted: dict[tuple[str, str], tuple[str, str]] = {}
    for target in resolved.sparkplug:
        kind = "DBIRTH" if target.device else "NBIRTH"
        topic = sparkplug.topic(target.group, kind, target.node, target.device)
        for metric, binding in target.metrics.items():
            wanted[(topic, metric)] = (binding.signal.code, f"{target.source} {metric}")
        for metric, signal in target.reason_metrics.items():
            wanted[(topic, metric)] = (f"{signal.code} (reason)", f"{target.source} {metric}")
    for json_target in resolved.json:
        for _, binding in json_target.values:
            wanted[(json_target.topic, binding.address)] = (
                binding.signal.code, f"{json_target.topic} {binding.address}")
    paths = {(t.topic, b.address): path for t in resolved.json for path, b in t.values}
    found: dict[tuple[str, str], Any] = {}

    def on_message(message: paho.MQTTMessage) -> None:
        if message.topic.startswith(sparkplug.NAMESPACE + "/"):
            try:
                payload = sparkplug.decode(bytes(message.payload))
            except sparkplug.PayloadError:
                return
            for metric in payload.metrics:
                if (message.topic, metric.name) in wanted:
                    try:
                        found[(message.topic, metric.name)] = sparkplug.number(metric)
                    except sparkplug.NotANumber as exc:
                        found[(message.topic, metric.name)] = exc
            return
        try:
            document = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            document = exc
        for (topic, address), path in paths.items():
            if topic == message.topic:
                present, raw = (False, None) if isinstance(document, Exception) \
                    else lookup(document, path)
                found[(topic, address)] = raw if present else LookupError(
                    f"no {address!r} in the message" if not isinstance(document, Exception)
                    else f"not JSON: {document}")

    address = BrokerAddress(source.host, source.port, source.tls, source.ca_file,
                            source.cert_file, source.key_file, source.username,
                            resolved.password)
    connection = Connection(f"{source.client_id}-check", on_message, clean_start=True)
    failure: str | None = None
    try:
        await connection.open(address, timeout=timeout)
        await connection.subscribe(sorted({t for t, _ in wanted}), timeout=timeout)
        for group, node in sorted({(t.group, t.node) for t in resolved.sparkplug}):
            connection.publish(sparkplug.topic(group, "NCMD", node),
                               sparkplug.rebirth_request(dt.datetime.now(dt.UTC)), qos=0)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < len(wanted) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
    except (BrokerError, TimeoutError) as exc:
        failure = f"cannot read from {address}: {_why(exc)}"
    finally:
        await connection.close()
    lines = []
    for key, (code, shown) in wanted.items():
        value = found.get(key)
        if failure is not None:
            lines.append(CheckedAddress(code, source.name, shown, "-", failure, False))
        elif key not in found:
            lines.append(CheckedAddress(code, source.name, shown, "-", (
                f"no birth within {timeout:g} s" if key[0].startswith(sparkplug.NAMESPACE)
                else f"no message within {timeout:g} s"), False))
        elif isinstance(value, Exception):
            lines.append(CheckedAddress(code, source.name, shown, "-", str(value), False))
        elif isinstance(value, int | float) and not isinstance(value, bool) \
                and math.isfinite(value):
            lines.append(CheckedAddress(code, source.name, shown, _shown(value), "good", True))
        else:
            lines.append(CheckedAddress(code, source.name, shown, "-",
                                        f"not a number: {value!r}", False))
    return lines


def render(lines: list[CheckedAddress]) -> str:
    headers = ("signal", "source", "address", "value", "status")
    rows = [(c.signal, c.source, c.address, c.value, c.status) for c in lines]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]
    failed = sum(not c.ok for c in lines)
    out.append(f"{len(lines)} addresses read, {failed} failed" if failed
               else f"{len(lines)} addresses read, all good")
    return "\n".join(out)
