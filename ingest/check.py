"""`mes collect --check`: reads every node and register of a tag map once and says how it went.

Each OPC UA server and Modbus device is connected to once; each address is read once and
its value decoded as the collectors would. Nothing is stored and no collector runs: it is
the check a controls engineer makes before starting collection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.attribute_ids import AttributeIds
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ingest.modbus import decode
from ingest.opcua import quality_of
from ingest.tagmap import ResolvedModbus, ResolvedOpcUa, TagMap


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
        *(_check_modbus(device) for device in tag_map.modbus))
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
