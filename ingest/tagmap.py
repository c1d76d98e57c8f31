"""Reads a tag map (TOML): where each plant signal lives on the PLCs, and how to read it.

The file is checked whole, first on its own and then against the plant's signals, and every
problem is reported with its key before any collector starts. Reading the PLCs is the
collectors' job; this module only says what to read and what it means.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transactional.errors import FileProblems
from transactional.files import read_toml
from transactional.vocabulary import SignalKind

RegisterType = Literal["uint16", "int16", "uint32", "int32", "float32"]
RegisterFunction = Literal["holding", "input"]
Order = Literal["big", "little"]

REGISTER_WIDTH: dict[str, int] = {
    "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2,
}
# Modbus allows at most 125 registers in one read request.
MAX_REGISTERS_PER_READ = 125

Name = Annotated[str, Field(min_length=1, max_length=100)]
Millis = Annotated[int, Field(gt=0, le=3_600_000)]


class TagMapError(FileProblems):
    """A tag map the collector refuses to start with; lists every problem found."""

    refusal = "tag map rejected, the collector did not start"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class _Filtered(_Entry):
    signal: Name
    # 0 keeps changes only; more also drops changes within the deadband.
    deadband: Annotated[float, Field(ge=0)] | None = None
    deadband_percent: Annotated[float, Field(gt=0, le=100)] | None = None

    @model_validator(mode="after")
    def _one_deadband(self) -> Self:
        if self.deadband is not None and self.deadband_percent is not None:
            raise ValueError("give deadband or deadband_percent, not both")
        return self


class OpcUaNode(_Filtered):
    node: Name
    # For a state signal: the node holding the machine's fault or reason code.
    reason_node: Name | None = None


class OpcUaSource(_Entry):
    name: Name
    endpoint: Annotated[str, Field(pattern=r"^opc\.tcp://[^/\s:]+(:\d{1,5})?(/\S*)?$")]
    publishing_interval_ms: Millis = 100
    sampling_interval_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 0
    nodes: Annotated[list[OpcUaNode], Field(min_length=1)]


class ModbusRegister(_Filtered):
    address: Annotated[int, Field(ge=0, le=65535)]
    type: RegisterType
    function: RegisterFunction = "holding"
    scale: float = 1.0
    offset: float = 0.0
    word_order: Order | None = None
    # For a state signal: a uint16 register holding the machine's fault or reason code.
    reason_address: Annotated[int, Field(ge=0, le=65535)] | None = None
    # With a deadband: store an unchanged value again after this many seconds.
    heartbeat_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None


class ModbusDevice(_Entry):
    name: Name
    host: Name
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit: Annotated[int, Field(ge=0, le=255)] = 1
    poll_interval_ms: Annotated[int, Field(ge=10, le=3_600_000)] = 1000
    timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 1000
    word_order: Order = "big"
    byte_order: Order = "big"
    # The default of the registers' heartbeat_seconds.
    heartbeat_seconds: Annotated[float, Field(gt=0, le=86_400)] | None = None
    registers: Annotated[list[ModbusRegister], Field(min_length=1)]


# Sparkplug B group, edge node and device ids: no topic separators or wildcards.
SparkplugId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^/+#]+$")]
# A JSON path: keys separated by dots, list positions in brackets ("data.values[0].v").
JSON_PATH = r"^[^.\[\]]+(\[\d+\])*(\.[^.\[\]]+(\[\d+\])*)*$"


class SparkplugMetric(_Filtered):
    metric: Name
    # For a state signal: the metric holding the machine's fault or reason code.
    reason_metric: Name | None = None


class SparkplugEndpoint(_Entry):
    """One Sparkplug B edge node, or one device of it, and the metrics it maps."""

    group: SparkplugId
    node: SparkplugId
    device: SparkplugId | None = None  # None: the edge node's own metrics (NBIRTH/NDATA)
    metrics: Annotated[list[SparkplugMetric], Field(min_length=1)]


class JsonValue(_Filtered):
    path: Annotated[str, Field(min_length=1, max_length=500, pattern=JSON_PATH)]


class JsonTopic(_Entry):
    """A topic whose messages are JSON objects, with the path of each signal's value."""

    topic: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^+#]+$")]
    # Where the time is: epoch seconds or milliseconds, or ISO 8601 text with a zone.
    # Without it, the time a message arrives.
    timestamp: Annotated[str, Field(min_length=1, max_length=500, pattern=JSON_PATH)] | None = None
    timestamp_unit: Literal["s", "ms"] = "ms"
    values: Annotated[list[JsonValue], Field(min_length=1)]


class MqttSource(_Entry):
    name: Name
    host: Name
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    # The broker keeps this client's session (subscriptions, queued messages) by its id.
    client_id: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
    tls: bool = False
    ca_file: Name | None = None
    cert_file: Name | None = None
    key_file: Name | None = None
    username: Name | None = None
    # The password is read from this environment variable, never from the file.
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    keepalive_seconds: Annotated[int, Field(ge=2, le=3600)] = 10
    # How long the broker queues messages for the collector while it is away.
    session_expiry_seconds: Annotated[int, Field(ge=60, le=2**32 - 1)] = 7 * 86_400
    # Unacknowledged messages in flight to the collector at once (MQTT 5 Receive Maximum).
    receive_maximum: Annotated[int, Field(ge=10, le=65535)] = 10_000
    sparkplug: list[SparkplugEndpoint] = []
    # `json` in the file: the name would shadow pydantic's own method.
    json_topics: list[JsonTopic] = Field(default=[], alias="json")

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if not self.sparkplug and not self.json_topics:
            raise ValueError("no [[mqtt.sparkplug]] or [[mqtt.json]] entry: nothing to collect")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise ValueError("ca_file, cert_file and key_file need tls = true")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together (a client certificate)")
        if self.password_env is not None and self.username is None:
            raise ValueError("password_env needs a username")
        return self


class TagMapFile(_Entry):
    opcua: list[OpcUaSource] = []
    modbus: list[ModbusDevice] = []
    mqtt: list[MqttSource] = []

    @model_validator(mode="after")
    def _has_sources(self) -> Self:
        if not self.opcua and not self.modbus and not self.mqtt:
            raise ValueError("no [[opcua]], [[modbus]] or [[mqtt]] source: nothing to collect")
        return self


# --- what the plant says about a signal ----------------------------------------------

@dataclass(frozen=True, slots=True)
class PlantSignal:
    """A signal as the plant model declares it (one row of ingest_api.signal_map)."""

    signal_id: int
    code: str
    kind: SignalKind
    equipment_id: int
    equipment_code: str
    low_limit: float | None = None
    high_limit: float | None = None
    # The machine's fastest ideal cycle time: how many parts its counters can plausibly
    # have made in a given time. None when the plant model gives none.
    ideal_cycle_seconds: float | None = None
    # The codes of the machine's state model; None when unknown (no check is made).
    state_codes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Binding:
    """One source address bound to a plant signal, with how to condition its values.

    `deadband` is absolute (a percent deadband is turned into units of the signal's range);
    `changes_only` keeps a value only when it moved beyond the deadband (which may be 0);
    `heartbeat_seconds` keeps an unchanged value again after that long, so a quiet signal
    is told from a dead one; `counter_modulus` is where a counter rolls over (2**16, 2**32).
    """

    signal: PlantSignal
    source: str
    address: str
    deadband: float = 0.0
    counter_modulus: int = 2**32
    changes_only: bool = False
    heartbeat_seconds: float | None = None

    @property
    def kind(self) -> SignalKind:
        return self.signal.kind


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """One Modbus read request covering contiguous registers, and what sits where."""

    function: RegisterFunction
    start: int
    count: int
    fields: tuple[RegisterField, ...]


@dataclass(frozen=True, slots=True)
class RegisterField:
    binding: Binding
    offset: int  # registers from the start of the read
    type: RegisterType
    word_order: Order
    byte_order: Order
    scale: float = 1.0
    value_offset: float = 0.0
    reason_offset: int | None = None


@dataclass(frozen=True)
class ResolvedOpcUa:
    source: OpcUaSource
    nodes: dict[str, Binding]            # node id -> binding of its value
    reason_nodes: dict[str, PlantSignal]  # node id -> the state signal it explains


@dataclass(frozen=True)
class ResolvedModbus:
    device: ModbusDevice
    reads: tuple[RegisterRead, ...]


@dataclass(frozen=True)
class SparkplugTarget:
    """An edge node (device None) or one of its devices, with its mapped metrics."""

    group: str
    node: str
    device: str | None
    source: str  # the name its collection gaps and progress are kept under
    metrics: dict[str, Binding]  # metric name -> binding of its value
    reason_metrics: dict[str, PlantSignal]  # metric name -> the state signal it explains


JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class JsonTarget:
    topic: str
    source: str
    timestamp: JsonPath | None
    timestamp_unit: Literal["s", "ms"]
    values: tuple[tuple[JsonPath, Binding], ...]


@dataclass(frozen=True)
class ResolvedMqtt:
    source: MqttSource
    password: str | None
    sparkplug: tuple[SparkplugTarget, ...]
    json: tuple[JsonTarget, ...]

    @property
    def gap_sources(self) -> list[str]:
        return [t.source for t in self.sparkplug] + [t.source for t in self.json]


def json_path(text: str) -> JsonPath:
    """"data.values[0].v" -> ("data", "values", 0, "v")."""
    steps: list[str | int] = []
    for part in text.split("."):
        key, *indexes = re.split(r"\[", part)
        steps.append(key)
        steps += [int(index.rstrip("]")) for index in indexes]
    return tuple(steps)


@dataclass(frozen=True)
class TagMap:
    """A tag map checked against the plant: what each collector reads, bound to signals."""

    opcua: tuple[ResolvedOpcUa, ...] = ()
    modbus: tuple[ResolvedModbus, ...] = ()
    mqtt: tuple[ResolvedMqtt, ...] = ()
    bindings: tuple[Binding, ...] = field(default=())

    @property
    def signal_count(self) -> int:
        return len(self.bindings)


# --- reading -------------------------------------------------------------------------

def read_tag_map_file(path: Path) -> TagMapFile:
    """Parse and check a tag map on its own; raises TagMapError listing every problem."""
    return read_toml(path, TagMapFile, TagMapError, _describe)


def _describe(raw: Any, error: Any) -> str:
    loc = error["loc"]
    where = ".".join(_step(raw, loc[: i + 1]) for i in range(len(loc))) or "(file)"
    message = str(error["msg"])
    if error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown field"
    elif error["type"] == "literal_error":
        message = f"{error.get('input')!r} is not allowed; {message.lower()}"
    return f"{where}: {message}"


def _step(raw: Any, loc: Sequence[Any]) -> str:
    # Name list entries by their signal or source name where there is one: "modbus[PRESS-1]".
    node: Any = raw
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return str(loc[-1])
    key = loc[-1]
    if isinstance(key, int) and isinstance(node, list) and key < len(node):
        entry = node[key]
        if isinstance(entry, dict):
            label = entry.get("signal") or entry.get("name")
            if isinstance(label, str):
                return f"[{label}]"
        return f"[{key}]"
    return str(key)


def read_tag_map(path: Path, signals: Mapping[str, PlantSignal]) -> TagMap:
    """Read a tag map and bind it to the plant's signals (code -> PlantSignal)."""
    return resolve(path, read_tag_map_file(path), signals)


def resolve(path: Path | str, parsed: TagMapFile, signals: Mapping[str, PlantSignal]) -> TagMap:
    problems: list[str] = []
    bindings: list[Binding] = []
    opcua: list[ResolvedOpcUa] = []
    modbus: list[ResolvedModbus] = []
    mqtt: list[ResolvedMqtt] = []

    names = Counter([s.name for s in parsed.opcua] + [d.name for d in parsed.modbus]
                    + [m.name for m in parsed.mqtt])
    problems += [f"source name {n!r} is used {c} times" for n, c in names.items() if c > 1]
    endpoints = Counter(s.endpoint for s in parsed.opcua)
    problems += [f"opcua endpoint {e!r} is listed {c} times; list its nodes once"
                 for e, c in endpoints.items() if c > 1]
    units = Counter((d.host, d.port, d.unit) for d in parsed.modbus)
    problems += [f"modbus device {h}:{p} unit {u} is listed {c} times; list its registers once"
                 for (h, p, u), c in units.items() if c > 1]

    for source in parsed.opcua:
        found, resolved = _resolve_opcua(source, signals)
        problems += found
        opcua.append(resolved)
        bindings += resolved.nodes.values()
    for device in parsed.modbus:
        found, resolved_device, device_bindings = _resolve_modbus(device, signals)
        problems += found
        modbus.append(resolved_device)
        bindings += device_bindings
    sessions = Counter((m.host, m.port, m.client_id) for m in parsed.mqtt)
    problems += [f"mqtt client_id {c!r} is used {n} times on {h}:{p}; each collector "
                 "needs a session of its own" for (h, p, c), n in sessions.items() if n > 1]
    for broker in parsed.mqtt:
        found, resolved_mqtt = _resolve_mqtt(broker, signals)
        problems += found
        mqtt.append(resolved_mqtt)
        bindings += [b for t in resolved_mqtt.sparkplug for b in t.metrics.values()]
        bindings += [b for t in resolved_mqtt.json for _, b in t.values]

    mapped = Counter(b.signal.code for b in bindings)
    for code, count in mapped.items():
        if count > 1:
            places = ", ".join(f"{b.source} {b.address}" for b in bindings if b.signal.code == code)
            problems.append(f"signal {code!r} is mapped {count} times ({places}); "
                            "each signal must come from one address")
    if problems:
        raise TagMapError(path, problems)
    return TagMap(opcua=tuple(opcua), modbus=tuple(modbus), mqtt=tuple(mqtt),
                  bindings=tuple(bindings))


def _signal_problems(where: str, entry: _Filtered, signals: Mapping[str, PlantSignal],
                     ) -> tuple[list[str], PlantSignal | None]:
    signal = signals.get(entry.signal)
    if signal is None:
        return [f"{where}: unknown signal {entry.signal!r}; the plant model has no such "
                "signal (load it with `mes plant load`)"], None
    problems = []
    filtered = entry.deadband is not None or entry.deadband_percent is not None
    if filtered and signal.kind != "process_value":
        problems.append(f"{where}: a deadband applies to process values only, and "
                        f"{signal.code!r} is a {signal.kind} signal")
    if entry.deadband_percent is not None and (signal.low_limit is None
                                               or signal.high_limit is None):
        problems.append(f"{where}: deadband_percent needs the signal's low_limit and "
                        f"high_limit in the plant model; give an absolute deadband instead")
    return problems, signal


def _reason_problems(where: str, key: str, signal: PlantSignal) -> list[str]:
    if signal.kind == "state":
        return []
    return [f"{where}: {key} belongs to a state signal, and {signal.code!r} is a "
            f"{signal.kind} signal"]


def _filtered(entry: _Filtered) -> bool:
    return entry.deadband is not None or entry.deadband_percent is not None


def _deadband(entry: _Filtered, signal: PlantSignal) -> float:
    if entry.deadband is not None:
        return entry.deadband
    if (entry.deadband_percent is not None and signal.low_limit is not None
            and signal.high_limit is not None):
        return entry.deadband_percent / 100 * (signal.high_limit - signal.low_limit)
    return 0.0


def _resolve_opcua(source: OpcUaSource, signals: Mapping[str, PlantSignal],
                   ) -> tuple[list[str], ResolvedOpcUa]:
    # Imported here: asyncua is slow to import, and only OPC UA entries need it.
    from asyncua.ua import NodeId
    from asyncua.ua.uaerrors import UaStringParsingError

    problems: list[str] = []
    nodes: dict[str, Binding] = {}
    reasons: dict[str, PlantSignal] = {}
    seen: Counter[str] = Counter()
    for entry in source.nodes:
        where = f"opcua[{source.name}].nodes[{entry.signal}]"
        for node_id in filter(None, (entry.node, entry.reason_node)):
            seen[node_id] += 1
            try:
                NodeId.from_string(node_id)
            except (ValueError, UaStringParsingError) as exc:
                problems.append(f"{where}: {node_id!r} is not an OPC UA node id "
                                f"like \"ns=2;s=Press1.State\" ({exc})")
        found, signal = _signal_problems(where, entry, signals)
        problems += found
        if signal is None:
            continue
        if entry.reason_node is not None:
            problems += _reason_problems(where, "reason_node", signal)
            reasons[entry.reason_node] = signal
        nodes[entry.node] = Binding(signal, source.name, entry.node, _deadband(entry, signal),
                                    changes_only=_filtered(entry))
    problems += [f"opcua[{source.name}]: node {n!r} is mapped {c} times" for n, c in seen.items()
                 if c > 1]
    return problems, ResolvedOpcUa(source, nodes, reasons)


def _resolve_modbus(device: ModbusDevice, signals: Mapping[str, PlantSignal],
                    ) -> tuple[list[str], ResolvedModbus, list[Binding]]:
    problems: list[str] = []
    # (function, address) -> what uses it, to find overlaps
    used: dict[tuple[str, int], str] = {}
    fields: dict[str, list[tuple[int, int, RegisterField]]] = defaultdict(list)
    bindings: list[Binding] = []
    for entry in device.registers:
        where = f"modbus[{device.name}].registers[{entry.signal}]"
        width = REGISTER_WIDTH[entry.type]
        spans = [(entry.address, width, f"{entry.signal} at {entry.address}")]
        if entry.reason_address is not None:
            spans.append((entry.reason_address, 1, f"the reason of {entry.signal} at "
                                                   f"{entry.reason_address}"))
        for start, count, label in spans:
            if start + count > 65536:
                problems.append(f"{where}: {entry.type} at {start} runs past register 65535")
            for address in range(start, start + count):
                other = used.get((entry.function, address))
                if other is not None:
                    problems.append(f"{where}: {entry.function} register {address} is already "
                                    f"used by {other}")
                used[(entry.function, address)] = label
        found, signal = _signal_problems(where, entry, signals)
        problems += found
        if signal is None:
            continue
        problems += _type_problems(where, entry, signal)
        if entry.reason_address is not None and signal.kind != "state":
            problems.append(f"{where}: reason_address belongs to a state signal, and "
                            f"{signal.code!r} is a {signal.kind} signal")
        elif (entry.reason_address is not None
              and entry.reason_address not in (entry.address - 1, entry.address + width)
              and entry.reason_address not in range(entry.address, entry.address + width)):
            # The state and its reason must come from one request to belong together.
            problems.append(f"{where}: reason_address {entry.reason_address} must be the "
                            f"register right before or after the state "
                            f"({entry.address - 1} or {entry.address + width})")
        heartbeat = (entry.heartbeat_seconds if entry.heartbeat_seconds is not None
                     else device.heartbeat_seconds)
        if entry.heartbeat_seconds is not None and not _filtered(entry):
            problems.append(f"{where}: heartbeat_seconds applies to a value kept on change "
                            "only; give a deadband (0 keeps every change)")
        binding = Binding(signal, device.name, f"{entry.function}:{entry.address}",
                          _deadband(entry, signal), 2 ** (16 * width),
                          changes_only=_filtered(entry),
                          heartbeat_seconds=heartbeat if _filtered(entry) else None)
        bindings.append(binding)
        start = min(entry.address, entry.reason_address if entry.reason_address is not None
                    else entry.address)
        end = max(entry.address + width, (entry.reason_address or 0) + 1)
        fields[entry.function].append((start, end, RegisterField(
            binding, entry.address, entry.type, entry.word_order or device.word_order,
            device.byte_order, entry.scale, entry.offset, entry.reason_address)))
    return problems, ResolvedModbus(device, _plan_reads(fields)), bindings


def _type_problems(where: str, entry: ModbusRegister, signal: PlantSignal) -> list[str]:
    problems = []
    if signal.kind in ("good_count", "reject_count") and entry.type not in ("uint16", "uint32"):
        problems.append(f"{where}: {signal.code!r} is a counter; read it as uint16 or uint32, "
                        f"not {entry.type}")
    if signal.kind == "state" and entry.type == "float32":
        problems.append(f"{where}: {signal.code!r} is a machine state; read it as an "
                        "integer type, not float32")
    if signal.kind != "process_value" and (entry.scale != 1.0 or entry.offset != 0.0):
        problems.append(f"{where}: scale and offset apply to process values only, and "
                        f"{signal.code!r} is a {signal.kind} signal")
    if entry.scale == 0.0:
        problems.append(f"{where}: scale 0 would turn every reading into the offset")
    return problems


def _plan_reads(fields: Mapping[str, list[tuple[int, int, RegisterField]]],
                ) -> tuple[RegisterRead, ...]:
    """Group registers into as few read requests as contiguity allows.

    Only touching registers are merged: reading an unmapped gap could hit an address the
    PLC refuses, which would fail the whole request.
    """
    reads: list[RegisterRead] = []
    for function, entries in sorted(fields.items()):
        group: list[tuple[int, int, RegisterField]] = []
        group_end = 0
        for start, end, fld in sorted(entries, key=lambda e: e[0]):
            if group and (start > group_end or end - group[0][0] > MAX_REGISTERS_PER_READ):
                reads.append(_read(function, group))
                group = []
            group.append((start, end, fld))
            group_end = max(group_end, end) if len(group) > 1 else end
        if group:
            reads.append(_read(function, group))
    return tuple(reads)


def _read(function: str, group: list[tuple[int, int, RegisterField]]) -> RegisterRead:
    first = group[0][0]
    last = max(end for _, end, _ in group)
    rebased = tuple(
        RegisterField(f.binding, f.offset - first, f.type, f.word_order, f.byte_order, f.scale,
                      f.value_offset, None if f.reason_offset is None else f.reason_offset - first)
        for _, _, f in group)
    return RegisterRead("holding" if function == "holding" else "input", first, last - first,
                        rebased)


def _resolve_mqtt(broker: MqttSource, signals: Mapping[str, PlantSignal],
                  ) -> tuple[list[str], ResolvedMqtt]:
    problems: list[str] = []
    password = None
    if broker.password_env is not None:
        password = os.environ.get(broker.password_env)
        if password is None:
            problems.append(f"mqtt[{broker.name}]: password_env {broker.password_env!r}: no "
                            "such environment variable is set")
    endpoints = Counter((e.group, e.node, e.device) for e in broker.sparkplug)
    problems += [f"mqtt[{broker.name}]: sparkplug {g}/{n}{'/' + d if d else ''} is listed "
                 f"{c} times; list its metrics once" for (g, n, d), c in endpoints.items()
                 if c > 1]
    topics = Counter(t.topic for t in broker.json_topics)
    problems += [f"mqtt[{broker.name}]: json topic {t!r} is listed {c} times; list its "
                 "values once" for t, c in topics.items() if c > 1]
    sparkplug: list[SparkplugTarget] = []
    for endpoint in broker.sparkplug:
        path = "/".join(filter(None, (endpoint.group, endpoint.node, endpoint.device)))
        source = f"{broker.name}:{path}"
        metrics: dict[str, Binding] = {}
        reasons: dict[str, PlantSignal] = {}
        seen: Counter[str] = Counter()
        for entry in endpoint.metrics:
            where = f"mqtt[{broker.name}].sparkplug[{path}].metrics[{entry.signal}]"
            for metric in filter(None, (entry.metric, entry.reason_metric)):
                seen[metric] += 1
            found, signal = _signal_problems(where, entry, signals)
            problems += found
            if signal is None:
                continue
            if entry.reason_metric is not None:
                problems += _reason_problems(where, "reason_metric", signal)
                reasons[entry.reason_metric] = signal
            metrics[entry.metric] = Binding(signal, source, entry.metric,
                                            _deadband(entry, signal),
                                            changes_only=_filtered(entry))
        problems += [f"mqtt[{broker.name}].sparkplug[{path}]: metric {m!r} is mapped {c} times"
                     for m, c in seen.items() if c > 1]
        sparkplug.append(SparkplugTarget(endpoint.group, endpoint.node, endpoint.device,
                                         source, metrics, reasons))
    json_targets: list[JsonTarget] = []
    for entry_topic in broker.json_topics:
        source = f"{broker.name}:{entry_topic.topic}"
        values: list[tuple[JsonPath, Binding]] = []
        paths = Counter(v.path for v in entry_topic.values)
        problems += [f"mqtt[{broker.name}].json[{entry_topic.topic}]: path {p!r} is mapped "
                     f"{c} times" for p, c in paths.items() if c > 1]
        for value in entry_topic.values:
            where = f"mqtt[{broker.name}].json[{entry_topic.topic}].values[{value.signal}]"
            found, signal = _signal_problems(where, value, signals)
            problems += found
            if signal is None:
                continue
            values.append((json_path(value.path), Binding(
                signal, source, value.path, _deadband(value, signal),
                changes_only=_filtered(value))))
        json_targets.append(JsonTarget(
            entry_topic.topic, source,
            None if entry_topic.timestamp is None else json_path(entry_topic.timestamp),
            entry_topic.timestamp_unit, tuple(values)))
    return problems, ResolvedMqtt(broker, password, tuple(sparkplug), tuple(json_targets))
