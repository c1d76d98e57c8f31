"""MQTT collector: Sparkplug B edge nodes and plain JSON topics on one broker.

It keeps a persistent session (QoS 1, no clean start) and acknowledges a message only once
the rows it carried are written or spooled, so a message the broker handed over is never
lost; one delivered again is recognised by its time and stored once. Sparkplug B births
give the metrics' aliases (kept in the collector's folder across restarts), sequence
numbers are checked per edge node (a gap asks the node to be born again and is recorded),
and a death marks the node's or device's signals communication-lost. A message that cannot
be read whole (no payload it understands, an unknown alias, no time) is set aside, counted
and logged; none of it is stored. Conditioning and storing are the writer's job.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from ingest import sparkplug
from ingest.aio import raise_if_cancelled
from ingest.broker import BrokerAddress, BrokerError, Connection
from ingest.conditioning import GapRow, Quality, Reading
from ingest.gaps import MESSAGE_LOST, GapKeeper
from ingest.health import Health
from ingest.tagmap import Binding, JsonPath, JsonTarget, ResolvedMqtt, SparkplugTarget
from ingest.writer import Writer

log = logging.getLogger("mes.ingest.mqtt")

# A node that does not answer a rebirth request is asked again after this long.
_REBIRTH_AGAIN_SECONDS = 5.0
# How long a clean stop waits for the rows of messages already received to be stored.
_DRAIN_SECONDS = 15.0
# The file of rejected messages stops growing here (they are still counted and logged).
_REJECTED_MAX_BYTES = 16 * 2**20


class Rejected(ValueError):
    """A message none of which can be stored; `reason` is its kind, for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class _Node:
    """What the collector knows of one Sparkplug edge node."""

    group: str
    node: str
    bd_seq: int | None = None
    next_seq: int | None = None  # None: take the next sequence number as it comes
    # device ("" for the node itself) -> alias -> metric name, from its latest birth
    births: dict[str, dict[int, str]] = field(default_factory=dict)
    rebirth_asked_at: float | None = None
    last_message_at: dt.datetime | None = None
    # The node, or devices of it (""), that died and were not born again since.
    dead: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"{self.group}/{self.node}"


@dataclass(frozen=True)
class CollectorPaths:
    """Where an MQTT collector keeps its Sparkplug births and the messages it set aside."""

    births: Path
    rejected: Path


class MqttCollector:
    def __init__(self, resolved: ResolvedMqtt, writer: Writer, health: Health | None = None,
                 *, gaps: GapKeeper | None = None, paths: CollectorPaths | None = None,
                 ) -> None:
        self.resolved = resolved
        source = resolved.source
        self.name = source.name
        self.writer = writer
        self.health = health or writer.health
        self.gaps = gaps
        self.paths = paths
        self.address = BrokerAddress(
            source.host, source.port, source.tls, source.ca_file, source.cert_file,
            source.key_file, source.username, resolved.password)
        self.connected = asyncio.Event()
        self._connection: Connection | None = None
        self._targets = {(t.group, t.node, t.device or ""): t for t in resolved.sparkplug}
        self._nodes = {(t.group, t.node): _Node(t.group, t.node) for t in resolved.sparkplug}
        # (group, node, device, metric) of a reason metric -> the binding of its state
        self._reason_of: dict[tuple[str, str, str, str], Binding] = {}
        for target in resolved.sparkplug:
            for metric, signal in target.reason_metrics.items():
                state = next(b for b in target.metrics.values() if b.signal == signal)
                self._reason_of[(target.group, target.node, target.device or "", metric)] = state
        self._json = {t.topic: t for t in resolved.json}
        # signal id -> time of the newest reading kept: one no newer is a redelivery. Counter
        # baselines carry over restarts, so a counter redelivered after one is known too.
        self._kept_until: dict[int, dt.datetime] = writer.counter_times()
        self._latest: dict[str, Reading] = {}
        self._outstanding = 0  # messages handed to the writer, not yet stored
        self._stopping = False
        self._last_message_at: dt.datetime | None = None
        self._logged_rejections: set[tuple[str, str]] = set()
        self._broker_state = ""
        self.figures: dict[str, Any] = {
            "messages": 0, "metrics": 0, "sequence_gaps": 0, "rebirths_requested": 0,
            "stale": 0, "rejected": {}}
        self.health.mqtt[self.name] = self.figures
        self.health.sources[self.name] = "starting"
        self._load_births()

    @property
    def gap_sources(self) -> list[str]:
        return self.resolved.gap_sources

    def latest_readings(self) -> list[Reading]:
        return list(self._latest.values())

    # --- the connection ----------------------------------------------------------------

    async def run(self) -> None:
        """Collect until cancelled; then wait for what was received to be stored."""
        backoff = 0.2
        try:
            while True:
                try:
                    await self._connect_and_collect()
                    backoff = 0.2
                except BrokerError as exc:
                    self._broker_lost(str(exc))
                raise_if_cancelled()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 2.0)
        finally:
            self.health.sources[self.name] = "stopped"

    async def _connect_and_collect(self) -> None:
        source = self.resolved.source
        connection = Connection(
            source.client_id, self._on_message, clean_start=False,
            session_expiry_seconds=source.session_expiry_seconds,
            receive_maximum=source.receive_maximum, manual_ack=True)
        # Before connecting: a kept session delivers its queued messages at once.
        self._connection = connection
        try:
            session_kept = await connection.open(self.address, source.keepalive_seconds)
            filters = sorted({sparkplug.node_filter(g, n) for g, n in self._nodes})
            filters += sorted(self._json)
            # A kept session has the subscriptions already, and delivers its queue before
            # the broker answers: subscribing again (the tag map may have grown) without
            # waiting for the answer.
            await connection.subscribe(filters, wait=not session_kept)
            self._set_state(f"connected to {self.address}")
            self.connected.set()
            if not session_kept:
                log.info("%s: connected to %s with a new session%s", self.name, self.address,
                         "; asking every Sparkplug node for its births" if self._nodes else "")
            for node in self._nodes.values():
                if not session_kept or not node.births:
                    self._request_rebirth(node, "a new session" if not session_kept
                                          else "no birth known")
            why = await connection.lost
            raise BrokerError(f"lost the connection to {self.address}: {why}")
        except asyncio.CancelledError:
            await self._drain(connection)
            raise
        finally:
            self.connected.clear()
            self._connection = None
            await connection.close()

    def _set_state(self, state: str) -> None:
        if state != self._broker_state:
            if state.startswith("connected") and self._broker_state:
                log.info("%s: %s again", self.name, state)
            self._broker_state = state
        self.health.sources[self.name] = state

    def _broker_lost(self, why: str) -> None:
        state = f"unreachable: {why}"
        if self._broker_state != state:
            log.warning("%s: %s", self.name, why)
        self._broker_state = state
        self.health.sources[self.name] = state
        if self.gaps is not None:
            since = self._last_message_at or dt.datetime.now(dt.UTC)
            for source in self.gap_sources:
                self.gaps.lost(source, since)

    async def _drain(self, connection: Connection) -> None:
        # Messages not yet handed over stay unacknowledged: the broker keeps them for the
        # next start. Those handed over are acknowledged as their rows are stored (the
        # writer runs until the sources have stopped).
        self._stopping = True
        deadline = time.monotonic() + _DRAIN_SECONDS
        while self._outstanding > 0 and connection.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    # --- messages ------------------------------------------------------------------------

    def _on_message(self, message: paho.MQTTMessage) -> None:
        connection = self._connection
        if self._stopping or connection is None:
            return  # not acknowledged: delivered again at the next start
        received = dt.datetime.now(dt.UTC)
        self._last_message_at = received
        self.figures["messages"] += 1
        topic = message.topic
        data = bytes(message.payload)
        try:
            if topic.startswith(sparkplug.NAMESPACE + "/"):
                readings, source = self._sparkplug(topic, data, received)
            else:
                readings, source = self._json_message(topic, data, received)
        except Rejected as rejected:
            self._reject(topic, data, rejected)
            readings, source = [], None
        if source is not None and self.gaps is not None:
            self.gaps.flowing(source)
        if message.qos == 0:
            self.writer.submit(readings)
            return
        self._outstanding += 1
        done = functools.partial(self._stored, connection, message.mid)
        if not self.writer.submit(readings, done):
            # The writer's queue is full: not acknowledged, so the broker keeps the message
            # and hands it over again after a reconnect.
            self._outstanding -= 1

    def _stored(self, connection: Connection, mid: int) -> None:
        self._outstanding -= 1
        # Only on the connection it came from: after a reconnect the same packet id may
        # name another message, which must not be acknowledged before it is stored.
        if connection is self._connection:
            connection.ack(mid)

    def _keep(self, reading: Reading, readings: list[Reading], historical: bool = False) -> None:
        signal = reading.binding.signal
        last = self._kept_until.get(signal.signal_id)
        if last is not None and reading.ts <= last:
            # Redelivered, or older than what is kept. A late process value is still a
            # measurement (stored once by its time); a state or counter cannot be placed
            # before a newer one.
            if not (historical and signal.kind == "process_value"):
                self.figures["stale"] += 1
                return
        else:
            self._kept_until[signal.signal_id] = reading.ts
        self._latest[signal.code] = reading
        readings.append(reading)

    def _reject(self, topic: str, payload: bytes, rejected: Rejected) -> None:
        counts: dict[str, int] = self.figures["rejected"]
        counts[rejected.reason] = counts.get(rejected.reason, 0) + 1
        key = (topic, rejected.reason)
        if key not in self._logged_rejections:
            self._logged_rejections.add(key)
            log.warning("%s: message on %s set aside, nothing of it stored: %s (further "
                        "such messages on this topic are counted in the status)", self.name,
                        topic, rejected)
        if self.paths is None:
            return
        path = self.paths.rejected
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_size > _REJECTED_MAX_BYTES:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as file:
                file.write(json.dumps({
                    "at": dt.datetime.now(dt.UTC).isoformat(), "source": self.name,
                    "topic": topic, "reason": rejected.reason, "detail": rejected.detail,
                    "payload_base64": base64.b64encode(payload).decode()}) + "\n")

    # --- Sparkplug B ------------------------------------------------------------------

    def _sparkplug(self, topic: str, data: bytes, received: dt.datetime,
                   ) -> tuple[list[Reading], str | None]:
        parts = sparkplug.parse_topic(topic)
        if parts is None or parts.message_type in ("NCMD", "DCMD"):
            return [], None  # commands (our own rebirth requests among them), STATE
        node = self._nodes.get((parts.group, parts.node))
        if node is None:
            return [], None
        try:
            payload = sparkplug.decode(data)
        except sparkplug.PayloadError as exc:
            raise Rejected("not Sparkplug B", str(exc)) from None
        self.figures["metrics"] += len(payload.metrics)
        kind = parts.message_type
        device = parts.device or ""
        if kind == "NDEATH":
            return self._node_death(node, payload, received), None
        if kind in sparkplug.SEQUENCED:
            self._check_sequence(node, kind, payload, received)
        node.last_message_at = received
        if kind == "NBIRTH":
            node.births = {}
            node.dead.clear()
            node.bd_seq = next((int(m.long_value or m.int_value) for m in payload.metrics
                                if m.name == sparkplug.BD_SEQ), node.bd_seq)
        if kind in ("NBIRTH", "DBIRTH"):
            node.dead.discard(device)
            node.births[device] = {int(m.alias): m.name for m in payload.metrics
                                   if m.HasField("alias") and m.name}
            node.rebirth_asked_at = None
            self._save_births()
        if kind == "DDEATH":
            return self._device_death(node, device, received), None
        target = self._targets.get((node.group, node.node, device))
        if target is None:
            return [], None  # a device the tag map does not map
        names = self._metric_names(node, device, kind, payload)
        return self._readings(target, names, payload, received), target.source

    def _check_sequence(self, node: _Node, kind: str, payload: Any,
                        received: dt.datetime) -> None:
        if not payload.HasField("seq"):
            raise Rejected("no sequence number", f"a {kind} of {node.label} without seq")
        seq = int(payload.seq) % 256
        expected, node.next_seq = node.next_seq, (seq + 1) % 256
        if kind == "NBIRTH" or expected is None or seq == expected:
            return
        self.figures["sequence_gaps"] += 1
        log.warning("%s: %s skipped from sequence number %d to %d (%s): messages were lost",
                    self.name, node.label, expected, seq, kind)
        self._record_lost_messages(node, received)
        self._request_rebirth(node, f"sequence gap {expected} -> {seq}", force=True)

    def _record_lost_messages(self, node: _Node, received: dt.datetime) -> None:
        since = node.last_message_at or received
        rows: list[GapRow] = []
        for target in self._targets.values():
            if (target.group, target.node) != (node.group, node.node):
                continue
            for equipment_id in sorted({b.signal.equipment_id for b in target.metrics.values()}):
                rows.append((since, equipment_id, target.source, MESSAGE_LOST, received))
        self.writer.record(rows)

    def _request_rebirth(self, node: _Node, why: str, force: bool = False) -> None:
        connection = self._connection
        now = time.monotonic()
        if connection is None or not connection.connected:
            return
        if (not force and node.rebirth_asked_at is not None
                and now - node.rebirth_asked_at < _REBIRTH_AGAIN_SECONDS):
            return
        node.rebirth_asked_at = now
        self.figures["rebirths_requested"] += 1
        log.info("%s: asking %s for its births again (%s)", self.name, node.label, why)
        connection.publish(sparkplug.topic(node.group, "NCMD", node.node),
                           sparkplug.rebirth_request(dt.datetime.now(dt.UTC)), qos=0)

    def _metric_names(self, node: _Node, device: str, kind: str, payload: Any) -> list[str]:
        """The name of each metric of a message, by its name or its alias."""
        aliases = node.births.get(device)
        names = []
        for metric in payload.metrics:
            if metric.name:
                names.append(metric.name)
                continue
            if aliases is None:
                self._request_rebirth(node, f"a {kind} before any birth")
                raise Rejected("no birth", f"{kind} of {node.label}{'/' + device if device else ''}"
                               " uses aliases, and no birth has defined them yet")
            name = aliases.get(int(metric.alias))
            if name is None:
                self._request_rebirth(node, f"unknown alias {metric.alias}")
                raise Rejected("unknown alias", f"alias {metric.alias} in a {kind} of "
                               f"{node.label}{'/' + device if device else ''} is not in its birth")
            names.append(name)
        return names

    def _readings(self, target: SparkplugTarget, names: list[str], payload: Any,
                  received: dt.datetime) -> list[Reading]:
        readings: list[Reading] = []
        states: dict[int, int] = {}  # equipment id -> index of its state reading
        reasons: dict[int, tuple[Binding, dt.datetime, int | None, bool]] = {}
        fallback = (sparkplug.to_time(payload.timestamp) if payload.HasField("timestamp")
                    else received)
        device = target.device or ""
        for metric, name in zip(payload.metrics, names, strict=True):
            binding = target.metrics.get(name)
            state = (None if binding is not None
                     else self._reason_of.get((target.group, target.node, device, name)))
            if binding is None and state is None:
                continue  # a metric the tag map does not map
            when = sparkplug.to_time(metric.timestamp) if metric.HasField("timestamp") \
                else fallback
            try:
                value = sparkplug.number(metric)
                quality = Quality.GOOD if value is not None else Quality.BAD
            except sparkplug.NotANumber:
                value, quality = None, Quality.BAD
            if value is not None and isinstance(value, float) and not math.isfinite(value):
                value, quality = None, Quality.BAD
            historical = bool(metric.is_historical)
            if state is not None:
                reason = int(value) if value is not None and value == int(value) else None
                reasons[state.signal.equipment_id] = (state, when, reason, historical)
                continue
            assert binding is not None
            if binding.kind == "state":
                states[binding.signal.equipment_id] = len(readings)
            self._keep(Reading(binding, when, value, quality), readings, historical)
        for equipment_id, (state_binding, when, reason, historical) in reasons.items():
            # A state change and its reason in one message make one row, not two.
            index = states.get(equipment_id)
            if index is not None and index < len(readings) \
                    and readings[index].binding is state_binding:
                readings[index] = readings[index]._replace(reason=reason)
            else:
                self._keep(Reading(state_binding, when, None, Quality.GOOD, reason), readings,
                           historical)
        return readings

    def _node_death(self, node: _Node, payload: Any, received: dt.datetime) -> list[Reading]:
        bd_seq = next((int(m.long_value or m.int_value) for m in payload.metrics
                       if m.name == sparkplug.BD_SEQ), None)
        if bd_seq is not None and node.bd_seq is not None and bd_seq != node.bd_seq:
            return []  # the death of an earlier session of the node, come late
        if "" in node.dead:
            return []  # delivered again
        log.warning("%s: edge node %s died", self.name, node.label)
        # The aliases stay: a message of the dead session delivered again still reads, and
        # a new session starts with a birth that replaces them.
        node.next_seq = None
        node.dead.add("")
        readings: list[Reading] = []
        for device in {t.device or "" for t in self._targets.values()
                       if (t.group, t.node) == (node.group, node.node)}:
            readings += self._device_death(node, device, received, log_it=False)
        return readings

    def _device_death(self, node: _Node, device: str, received: dt.datetime,
                      log_it: bool = True) -> list[Reading]:
        target = self._targets.get((node.group, node.node, device))
        if target is None or (device in node.dead and log_it):
            return []
        node.dead.add(device)
        if log_it:
            log.warning("%s: device %s/%s died", self.name, node.label, device)
        if self.gaps is not None:
            self.gaps.lost(target.source, received)
        # At arrival, and not taken as the newest value kept: the edge node's clock decides
        # what is new once it is born again.
        lost = [Reading(b, received, None, Quality.COMMUNICATION_LOST)
                for b in target.metrics.values() if b.kind == "process_value"]
        for reading in lost:
            self._latest[reading.binding.signal.code] = reading
        return lost

    # --- JSON ----------------------------------------------------------------------------

    def _json_message(self, topic: str, data: bytes, received: dt.datetime,
                      ) -> tuple[list[Reading], str | None]:
        target = self._json.get(topic)
        if target is None:
            return [], None
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Rejected("not JSON", str(exc)) from None
        when = received if target.timestamp is None else _json_time(target, document)
        readings: list[Reading] = []
        present = 0
        for path, binding in target.values:
            found, raw = lookup(document, path)
            if not found:
                continue
            present += 1
            self.figures["metrics"] += 1
            if isinstance(raw, bool):
                raw = int(raw)
            if isinstance(raw, int | float) and math.isfinite(raw):
                reading = Reading(binding, when, raw, Quality.GOOD)
            else:  # null, text, an object where a number belongs
                reading = Reading(binding, when, None, Quality.BAD)
            self._keep(reading, readings)
        return readings, target.source if present else None

    # --- births kept across restarts ----------------------------------------------------

    def _save_births(self) -> None:
        if self.paths is None:
            return
        data = {f"{n.group}/{n.node}": {"bd_seq": n.bd_seq, "births": {
            device: {str(alias): name for alias, name in aliases.items()}
            for device, aliases in n.births.items()}} for n in self._nodes.values()}
        path = self.paths.births
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(path)

    def _load_births(self) -> None:
        # Messages the broker kept while the collector was away use the aliases of births
        # it saw before: without them, those messages could not be read.
        if self.paths is None or not self.paths.births.exists():
            return
        try:
            data = json.loads(self.paths.births.read_text())
        except (OSError, json.JSONDecodeError):
            return
        for node in self._nodes.values():
            saved = data.get(f"{node.group}/{node.node}")
            if saved:
                node.bd_seq = saved.get("bd_seq")
                node.births = {device: {int(alias): name for alias, name in aliases.items()}
                               for device, aliases in saved.get("births", {}).items()}


def lookup(document: Any, path: JsonPath) -> tuple[bool, Any]:
    node = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return False, None
        elif not isinstance(node, dict) or step not in node:
            return False, None
        node = node[step]
    return True, node


def _json_time(target: JsonTarget, document: Any) -> dt.datetime:
    assert target.timestamp is not None
    found, raw = lookup(document, target.timestamp)
    shown = ".".join(map(str, target.timestamp))
    if not found:
        raise Rejected("no time", f"no {shown!r} in the message")
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        seconds = raw / 1000 if target.timestamp_unit == "ms" else raw
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise Rejected("bad time", f"{shown} = {raw!r} is no time") from None
    if isinstance(raw, str):
        try:
            moment = dt.datetime.fromisoformat(raw)
        except ValueError:
            raise Rejected("bad time", f"{shown} = {raw!r} is no ISO 8601 time") from None
        if moment.tzinfo is None:
            raise Rejected("bad time", f"{shown} = {raw!r} has no time zone")
        return moment.astimezone(dt.UTC)
    raise Rejected("bad time", f"{shown} = {raw!r} is no time")
