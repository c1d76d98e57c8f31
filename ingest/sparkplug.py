"""Sparkplug B: its topics, its payload (Protocol Buffers) and metric values as numbers.

The payload schema is the part of Eclipse Tahu's `sparkplug_b.proto` an MES reads (payload
time and sequence number; metrics with name, alias, time, data type, the historical and null
flags and a scalar value), declared here and compiled by protobuf when first used, so no
generated code is kept. Data sets, templates, property sets and metadata stay unknown fields
and are skipped. Connecting to a broker is `ingest.broker`'s job; what a metric means for
the plant, the collector's.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
# Message types that carry a sequence number checked per edge node.
SEQUENCED = frozenset({"NBIRTH", "NDATA", "DBIRTH", "DDATA", "DDEATH"})
MESSAGE_TYPES = frozenset({"NBIRTH", "NDATA", "NDEATH", "DBIRTH", "DDATA", "DDEATH",
                           "NCMD", "DCMD"})

# Sparkplug B data types (the `datatype` of a metric).
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12
DATA_TYPE_NAMES = {0: "Unknown", 1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8",
                   6: "UInt16", 7: "UInt32", 8: "UInt64", 9: "Float", 10: "Double",
                   11: "Boolean", 12: "String", 13: "DateTime", 14: "Text", 15: "UUID",
                   16: "DataSet", 17: "Bytes", 18: "File", 19: "Template"}
# Signed integers travel as unsigned two's complement: Int8-Int32 in 32 bits (some edge
# nodes use the type's own width), Int64 in 64.
_SIGNED_WIDTH = {INT8: 8, INT16: 16, INT32: 32}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class PayloadError(ValueError):
    """A payload that is no Sparkplug B payload."""


class Topic(NamedTuple):
    group: str
    message_type: str
    node: str
    device: str | None


def parse_topic(topic: str) -> Topic | None:
    """The parts of a Sparkplug B topic; None for anything else (STATE, other namespaces)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] not in MESSAGE_TYPES:
        return None
    return Topic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


def topic(group: str, message_type: str, node: str, device: str | None = None) -> str:
    return "/".join([NAMESPACE, group, message_type, node, *([device] if device else [])])


def node_filter(group: str, node: str) -> str:
    """The subscription that takes every message of one edge node and its devices."""
    return f"{NAMESPACE}/{group}/+/{node}/#"


def to_time(milliseconds: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=milliseconds)


def milliseconds(moment: dt.datetime) -> int:
    return (moment - _EPOCH) // dt.timedelta(milliseconds=1)


@functools.cache
def _payload_class() -> Any:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(
        name="open_mes/sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2")
    payload = schema.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    metric_fields: list[tuple[str, int, int, bool]] = [
        ("name", 1, field.TYPE_STRING, False), ("alias", 2, field.TYPE_UINT64, False),
        ("timestamp", 3, field.TYPE_UINT64, False), ("datatype", 4, field.TYPE_UINT32, False),
        ("is_historical", 5, field.TYPE_BOOL, False), ("is_transient", 6, field.TYPE_BOOL, False),
        ("is_null", 7, field.TYPE_BOOL, False),
        ("int_value", 10, field.TYPE_UINT32, True), ("long_value", 11, field.TYPE_UINT64, True),
        ("float_value", 12, field.TYPE_FLOAT, True), ("double_value", 13, field.TYPE_DOUBLE, True),
        ("boolean_value", 14, field.TYPE_BOOL, True), ("string_value", 15, field.TYPE_STRING, True),
        ("bytes_value", 16, field.TYPE_BYTES, True),
    ]
    for name, number, type_, in_value in metric_fields:
        added = metric.field.add(name=name, number=number, type=type_,
                                 label=field.LABEL_OPTIONAL)
        if in_value:
            added.oneof_index = 0
    payload.field.add(name="timestamp", number=1, type=field.TYPE_UINT64,
                      label=field.LABEL_OPTIONAL)
    payload.field.add(name="metrics", number=2, type=field.TYPE_MESSAGE,
                      label=field.LABEL_REPEATED,
                      type_name=".org.eclipse.tahu.protobuf.Payload.Metric")
    payload.field.add(name="seq", number=3, type=field.TYPE_UINT64, label=field.LABEL_OPTIONAL)
    payload.field.add(name="uuid", number=4, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    payload.field.add(name="body", number=5, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
    # A pool of its own: another library registering Tahu's schema cannot clash with it.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


def decode(data: bytes) -> Any:
    """The payload message; PayloadError when the bytes are no Sparkplug B payload."""
    from google.protobuf.message import DecodeError

    payload = _payload_class()()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise PayloadError(f"not a Sparkplug B payload ({exc})") from None
    return payload


class NotANumber(ValueError):
    """A metric whose value an MES cannot store as a number (a string, a data set...)."""


def number(metric: Any) -> int | float | None:
    """A metric's value as a number; None when the metric says its value is null."""
    if metric.is_null:
        return None
    kind = metric.WhichOneof("value")
    if kind == "double_value":
        value: int | float = metric.double_value
    elif kind == "float_value":
        value = metric.float_value
    elif kind == "int_value":
        value = metric.int_value
        width = _SIGNED_WIDTH.get(metric.datatype)
        if width is not None:
            if value >= 2**31:
                value -= 2**32
            elif width < 32 and value >= 2 ** (width - 1):
                value -= 2**width
    elif kind == "long_value":
        value = metric.long_value
        if metric.datatype == INT64 and value >= 2**63:
            value -= 2**64
    elif kind == "boolean_value":
        value = int(metric.boolean_value)
    elif kind is None:
        raise NotANumber(f"no scalar value (data type "
                         f"{DATA_TYPE_NAMES.get(metric.datatype, metric.datatype)})")
    else:
        raise NotANumber(f"a {kind.removesuffix('_value')} value")
    return value


# --- writing payloads (the simulator's edge node, rebirth requests) --------------------

@dataclass(frozen=True, slots=True)
class MetricOut:
    """A metric to publish: by name (births), by alias (data), or both."""

    value: int | float | bool | None
    datatype: int
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None  # ms since the epoch
    historical: bool = False


def encode(metrics: list[MetricOut], timestamp: int, seq: int | None = None) -> bytes:
    payload = _payload_class()(timestamp=timestamp)
    if seq is not None:
        payload.seq = seq
    for out in metrics:
        metric = payload.metrics.add(datatype=out.datatype)
        if out.name is not None:
            metric.name = out.name
        if out.alias is not None:
            metric.alias = out.alias
        if out.timestamp is not None:
            metric.timestamp = out.timestamp
        if out.historical:
            metric.is_historical = True
        value = out.value
        if value is None:
            metric.is_null = True
        elif out.datatype == BOOLEAN:
            metric.boolean_value = bool(value)
        elif out.datatype in (FLOAT,):
            metric.float_value = float(value)
        elif out.datatype == DOUBLE:
            metric.double_value = float(value)
        elif out.datatype in (INT64, UINT64):
            metric.long_value = int(value) % 2**64
        else:
            metric.int_value = int(value) % 2**32
    data: bytes = payload.SerializeToString()
    return data


def rebirth_request(now: dt.datetime) -> bytes:
    """The NCMD payload asking an edge node to publish its births again."""
    stamp = milliseconds(now)
    return encode([MetricOut(True, BOOLEAN, name=REBIRTH, timestamp=stamp)], stamp)
