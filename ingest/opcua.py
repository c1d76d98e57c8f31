"""OPC UA collector: subscribes to the tag map's nodes on one server and never polls.

Each publish response becomes one list of readings handed to the writer without waiting.
When the server goes away the collector marks the gap (a communication-lost sample on each
process value, and a collection gap per machine), reconnects with a short jittered backoff
and subscribes again. Bad and uncertain status
codes are kept as the sample's quality. Conditioning and storing are the writer's job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.status_codes import StatusCodes

from ingest.aio import raise_if_cancelled
from ingest.conditioning import Quality, Reading
from ingest.gaps import GapKeeper
from ingest.health import Health
from ingest.tagmap import Binding, PlantSignal, ResolvedOpcUa
from ingest.writer import Writer

log = logging.getLogger("mes.ingest.opcua")

_COMMUNICATION = {
    StatusCodes.BadCommunicationError, StatusCodes.BadNotConnected,
    StatusCodes.BadNoCommunication, StatusCodes.BadServerNotConnected,
    StatusCodes.BadConnectionClosed, StatusCodes.BadWaitingForInitialData,
}
_SPECIFIC = {
    StatusCodes.BadOutOfRange: Quality.OUT_OF_RANGE,
    StatusCodes.BadDeviceFailure: Quality.DEVICE_EXCEPTION,
    StatusCodes.BadSensorFailure: Quality.DEVICE_EXCEPTION,
    StatusCodes.BadTimeout: Quality.TIMEOUT,
}


def quality_of(status: ua.StatusCode | None) -> Quality:
    """Map an OPC UA status code onto the sample quality codes (mes.sample_quality)."""
    if status is None:
        return Quality.GOOD
    code = status.value
    if code in _COMMUNICATION:
        return Quality.COMMUNICATION_LOST
    if code in _SPECIFIC:
        return _SPECIFIC[code]
    severity = code >> 30
    return Quality.GOOD if severity == 0 else Quality.UNCERTAIN if severity == 1 else Quality.BAD


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class _Target:
    """What a client handle stands for: a signal's value, or the reason of a state."""

    __slots__ = ("binding", "reason_of")

    def __init__(self, binding: Binding | None, reason_of: PlantSignal | None) -> None:
        self.binding = binding
        self.reason_of = reason_of


class _Subscription(Subscription):
    """Turns each publish response into one list of readings, in the publish loop itself.

    The library's handler path would start a task per notification; a plant sends tens
    of thousands per second, so the whole response is handled in one pass instead.
    """

    def __init__(self, session: Any, params: ua.CreateSubscriptionParameters,
                 collector: OpcUaCollector) -> None:
        super().__init__(session, params, handler=collector)  # a handler: no iterator queue
        self._collector = collector

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        self._collector.alive_at = time.time()
        message = publish_result.NotificationMessage
        if message.NotificationData is None:
            return
        self.last_sequence_number = int(message.SequenceNumber)
        for data in message.NotificationData:
            if isinstance(data, ua.DataChangeNotification):
                self._collector.on_data_change(data.MonitoredItems)
            elif isinstance(data, ua.StatusChangeNotification):
                self._collector.status_change_notification(data)


class OpcUaCollector:
    # Reconnect attempts start at once-ish and stay frequent: a server that is back should
    # be read again within a second or two. The jitter spreads many edge collectors that
    # lost the same server over the interval, instead of all knocking at once.
    def __init__(self, source: ResolvedOpcUa, writer: Writer, health: Health | None = None, *,
                 min_backoff: float = 0.2, max_backoff: float = 1.0,
                 timeout: float = 4.0, gaps: GapKeeper | None = None) -> None:
        self.source = source
        self.gaps = gaps
        self.alive_at: float | None = None  # wall clock of the last publish response
        self.name = source.source.name
        self.writer = writer
        self.health = health or writer.health
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.connected = asyncio.Event()
        self.refused: dict[str, str] = {}  # node id -> why the server refused to monitor it
        self.reconnects = 0
        self._last_failure: str | None = None
        targets: list[_Target] = []
        self._node_ids: list[str] = []
        for node_id, binding in source.nodes.items():
            targets.append(_Target(binding, None))
            self._node_ids.append(node_id)
        for node_id, state_signal in source.reason_nodes.items():
            targets.append(_Target(None, state_signal))
            self._node_ids.append(node_id)
        self._targets = targets
        self._latest: list[Reading | None] = [None] * len(targets)  # by client handle
        self._state_by_equipment = {b.signal.equipment_id: b for b in source.nodes.values()
                                    if b.kind == "state"}
        self._process_values = [b for b in source.nodes.values() if b.kind == "process_value"]
        self._set_state("starting")

    def _set_state(self, state: str) -> None:
        self.health.sources[self.name] = state

    async def run(self) -> None:
        """Collect until cancelled, reconnecting whenever the server goes away."""
        backoff = self.min_backoff
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure of a session means: reconnect
                reason = str(exc) or type(exc).__name__
                if self.connected.is_set():
                    log.warning("%s: connection to %s lost (%s)", self.name,
                                self.source.source.endpoint, reason)
                elif reason != self._last_failure:
                    # Once per reason, not on every attempt of a server that stays away.
                    log.warning("%s: cannot connect to %s (%s); retrying every %.1f s or "
                                "less", self.name, self.source.source.endpoint, reason,
                                self.max_backoff)
                self._last_failure = reason
            raise_if_cancelled()
            if self.connected.is_set():
                self.connected.clear()
                self._mark_gap()
                self.reconnects += 1
                if time.monotonic() - started > self.max_backoff:
                    backoff = self.min_backoff
            delay = backoff * random.uniform(0.5, 1.0)
            self._set_state(f"disconnected, retrying in {delay:.1f} s")
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, self.max_backoff)

    async def _session(self) -> None:
        source = self.source.source
        client = Client(source.endpoint, timeout=self.timeout)
        # Ten minutes, what common servers (asyncua's own included) grant at most; asking
        # for more only earns a warning in the log.
        client.session_timeout = 600_000
        self._set_state("connecting")
        async with client:
            params = ua.CreateSubscriptionParameters()
            params.RequestedPublishingInterval = source.publishing_interval_ms
            params.RequestedLifetimeCount = 10000
            params.RequestedMaxKeepAliveCount = client.get_keepalive_count(
                source.publishing_interval_ms)
            params.MaxNotificationsPerPublish = 0  # no limit
            params.PublishingEnabled = True
            params.Priority = 0
            subscription = _Subscription(client.uaclient.session, params, self)
            await subscription.init()
            await self._monitor(subscription, source.sampling_interval_ms)
            self.connected.set()
            self._last_failure = None
            self._set_state(f"connected to {source.endpoint}")
            log.info("%s: subscribed to %d nodes on %s", self.name,
                     len(self._targets) - len(self.refused), source.endpoint)
            # Publish responses arrive at least every keep-alive; silence longer than that
            # means the server or the network is gone even if the socket looks open.
            keep_alive = (params.RequestedMaxKeepAliveCount * source.publishing_interval_ms
                          / 1000)
            silence = max(3 * keep_alive, 2 * self.timeout)
            while True:
                await asyncio.sleep(min(0.5, keep_alive))
                if client.state.value != "connected":
                    raise ConnectionError(f"client state is {client.state.value}")
                last = subscription.last_publish_at
                if last is not None and time.monotonic() - last > silence:
                    raise ConnectionError(f"no publish response for {silence:.1f} s")

    async def _monitor(self, subscription: _Subscription, sampling_ms: int) -> None:
        requests = []
        for handle, node_id in enumerate(self._node_ids):
            item = ua.ReadValueId()
            item.NodeId = ua.NodeId.from_string(node_id)
            item.AttributeId = AttributeIds.Value
            parameters = ua.MonitoringParameters()
            parameters.ClientHandle = handle
            parameters.SamplingInterval = float(sampling_ms)
            # Queue on the server between publishes, so a burst of changes is not folded
            # into its last value.
            parameters.QueueSize = 100
            parameters.DiscardOldest = True
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = item
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = parameters
            requests.append(request)
        results = await subscription.create_monitored_items(requests)
        refused: dict[str, str] = {}
        now = dt.datetime.now(dt.UTC)
        bad: list[Reading] = []
        for handle, result in enumerate(results):
            if isinstance(result, ua.StatusCode):
                node_id = self._node_ids[handle]
                refused[node_id] = result.name
                binding = self._targets[handle].binding
                if binding is not None:
                    bad.append(Reading(binding, now, None, Quality.BAD))
        if refused and refused != self.refused:
            for node_id, why in refused.items():
                log.error("%s: the server refused to monitor %s: %s", self.name, node_id, why)
        self.refused = refused
        self.writer.submit(bad)

    def on_data_change(self, items: list[ua.MonitoredItemNotification]) -> None:
        readings: list[Reading] = []
        states: dict[int, int] = {}  # equipment id -> index of its state reading
        reasons: dict[int, tuple[dt.datetime, int | None]] = {}
        received = dt.datetime.now(dt.UTC)
        targets = self._targets
        for item in items:
            target = targets[item.ClientHandle]
            value = item.Value
            when = _utc(value.SourceTimestamp) or _utc(value.ServerTimestamp) or received
            quality = quality_of(value.StatusCode)
            raw = value.Value.Value if value.Value is not None else None
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int | float)):
                quality, raw = Quality.BAD, None  # a string or array where a number belongs
            if target.binding is None:
                assert target.reason_of is not None
                reason = int(raw) if quality == Quality.GOOD and raw is not None else None
                reasons[target.reason_of.equipment_id] = (when, reason)
                continue
            if target.binding.kind == "state":
                states[target.binding.signal.equipment_id] = len(readings)
            reading = Reading(target.binding, when, raw, quality)
            self._latest[item.ClientHandle] = reading
            readings.append(reading)
        for equipment_id, (when, reason) in reasons.items():
            # A state change and its reason in one response make one row, not two.
            index = states.get(equipment_id)
            if index is not None:
                readings[index] = readings[index]._replace(reason=reason)
            else:
                binding = self._state_by_equipment.get(equipment_id)
                if binding is not None:
                    readings.append(Reading(binding, when, None, Quality.GOOD, reason))
        if self.gaps is not None:
            self.gaps.flowing(self.name)
        self.writer.submit(readings)

    def latest_readings(self) -> list[Reading]:
        """The last reading of each node (its value, quality and time)."""
        return [reading for reading in self._latest if reading is not None]

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        # Comes with a lost connection, which is reported once by the reconnect loop.
        log.debug("%s: subscription status changed to %s", self.name, status.Status.name)

    def _mark_gap(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.writer.submit([Reading(b, now, None, Quality.COMMUNICATION_LOST)
                            for b in self._process_values])
        if self.gaps is not None:
            # From the last sign of life: the server may have been gone for a while
            # before the silence watchdog noticed.
            since = (now if self.alive_at is None
                     else min(now, dt.datetime.fromtimestamp(self.alive_at, dt.UTC)))
            self.gaps.lost(self.name, since)
