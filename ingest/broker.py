"""One connection to an MQTT broker (paho-mqtt, MQTT 5), driven by the running asyncio loop.

The socket is watched by the event loop itself, so a message is handed over in the loop's
thread without a thread hop, and an acknowledgement is sent when the caller says so
(manual acknowledgement: a collector acknowledges once the rows a message carried are
stored). One object is one connection: reconnecting makes a new one, so nothing a lost
connection had queued is sent again behind the caller's back. Retrying is the caller's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import select
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger("mes.ingest.broker")

# Packets read in one go before other tasks get their turn.
_PACKETS_PER_WAKE = 200


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker is and how to log in to it."""

    host: str
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{shown}:{self.port}"


class BrokerError(ConnectionError):
    """The broker could not be reached, refused the connection, or went away."""


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1


class Connection:
    """A connection to a broker: `await open()`, then publish, subscribe and acknowledge.

    `on_message(message)` is called in the event loop's thread for each message received;
    with `manual_ack`, every QoS 1 message must be acknowledged with `ack(message.mid)`.
    `lost` completes (with the reason) when the connection ends for any reason.
    """

    def __init__(self, client_id: str, on_message: Callable[[paho.MQTTMessage], None], *,
                 clean_start: bool, session_expiry_seconds: int = 0,
                 receive_maximum: int = 65535, manual_ack: bool = False,
                 max_inflight: int = 1000, will: Will | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=paho.MQTTv5, manual_ack=manual_ack,
                             reconnect_on_failure=False)
        # Outgoing QoS 1 messages in flight at once (paho's default of 20 would make a
        # publisher wait for the broker every 20 messages).
        client.max_inflight_messages_set(max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _client, _userdata, message: on_message(message)
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos)
        self._client = client
        self._clean_start = clean_start
        self._session_expiry = session_expiry_seconds
        self._receive_maximum = receive_maximum
        self._connected: asyncio.Future[bool] = self._loop.create_future()
        self.lost: asyncio.Future[str] = self._loop.create_future()
        self._subscribed: dict[int, asyncio.Future[list[int]]] = {}
        self.on_published: Callable[[int], None] | None = None
        self._misc: asyncio.Task[None] | None = None
        self._fd: int | None = None

    @property
    def connected(self) -> bool:
        return self._connected.done() and not self.lost.done()

    async def open(self, address: BrokerAddress, keepalive: int = 10,
                   timeout: float = 5.0) -> bool:
        """Connect; True when the broker kept the session of an earlier connection."""
        client = self._client
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(ca_certs=address.ca_file, certfile=address.cert_file,
                           keyfile=address.key_file, cert_reqs=ssl.CERT_REQUIRED)
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry
        # How many unacknowledged messages the broker may send at once: acknowledging only
        # once rows are stored needs a window wider than one flush of the writer.
        properties.ReceiveMaximum = self._receive_maximum
        client.connect_timeout = timeout
        try:
            # The TCP (and TLS) handshake blocks: in a thread, before the loop watches the
            # socket. Nothing else touches the client meanwhile.
            await self._loop.run_in_executor(None, functools.partial(
                client.connect, address.host, address.port, keepalive,
                clean_start=self._clean_start, properties=properties))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise BrokerError(f"cannot connect to {address}: {_why(exc)}") from None
        self._watch()
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._connected)
        except TimeoutError:
            self._drop("no answer to CONNECT")
            raise BrokerError(f"{address} did not answer within {timeout:g} s") from None

    def _watch(self) -> None:
        client = self._client
        sock = client.socket()
        if sock is None:
            raise BrokerError("the connection closed while it was being opened")
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._readable)
        client.on_socket_register_write = lambda _c, _u, _s: self._want_write(True)
        client.on_socket_unregister_write = lambda _c, _u, _s: self._want_write(False)
        client.on_socket_close = lambda _c, _u, _s: self._unwatch()
        if client.want_write():
            self._want_write(True)
        self._misc = self._loop.create_task(self._housekeeping())

    def _want_write(self, wanted: bool) -> None:
        if self._fd is None:
            return
        if wanted:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)

    def _unwatch(self) -> None:
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = None
        if self._misc is not None and self._misc is not asyncio.current_task(self._loop):
            self._misc.cancel()

    def _readable(self) -> None:
        # paho reads one packet per call: go on while more is waiting, rather than one
        # turn of the event loop per message.
        client = self._client
        for _ in range(_PACKETS_PER_WAKE):
            rc = client.loop_read()
            if rc != paho.MQTT_ERR_SUCCESS:
                self._drop(paho.error_string(rc))
                return
            sock = client.socket()
            if sock is None:
                return
            pending = getattr(sock, "pending", None)  # TLS: decrypted, not yet read
            if not (pending is not None and pending()) and not select.select(
                    [sock], [], [], 0)[0]:
                return

    def _writable(self) -> None:
        rc = self._client.loop_write()
        if rc != paho.MQTT_ERR_SUCCESS:
            self._drop(paho.error_string(rc))

    async def _housekeeping(self) -> None:
        # Keep-alive pings, and noticing a broker that stopped answering them.
        while True:
            await asyncio.sleep(1.0)
            rc = self._client.loop_misc()
            if rc != paho.MQTT_ERR_SUCCESS:
                self._drop(paho.error_string(rc))
                return

    def _drop(self, why: str) -> None:
        self._unwatch()
        self._close_socket()
        self._lost(why)

    def _close_socket(self) -> None:
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _lost(self, why: str) -> None:
        if not self.lost.done():
            self.lost.set_result(why)
        if not self._connected.done():
            self._connected.set_exception(BrokerError(why))
            self._connected.exception()  # retrieved: nobody may be waiting any more
        for future in self._subscribed.values():
            if not future.done():
                future.set_exception(BrokerError(why))
                future.exception()

    # --- paho's callbacks (in the loop's thread) ---------------------------------------

    def _on_connect(self, _client: paho.Client, _userdata: Any, flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            self._lost(f"the broker refused the connection: {reason}")
            self._client.disconnect()
        elif not self._connected.done():
            self._connected.set_result(bool(flags.session_present))

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                       _properties: Any) -> None:
        self._unwatch()
        self._lost(str(reason) if str(reason) != "Success" else "disconnected")

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int, reasons: Any,
                      _properties: Any) -> None:
        future = self._subscribed.pop(mid, None)
        if future is not None and not future.done():
            future.set_result([int(reason.value) for reason in reasons])

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, _reason: Any,
                    _properties: Any) -> None:
        if self.on_published is not None:
            self.on_published(mid)

    # --- what the caller does ----------------------------------------------------------

    async def subscribe(self, filters: list[str], qos: int = 1, timeout: float = 5.0,
                        wait: bool = True) -> None:
        """Subscribe to topic filters; BrokerError when the broker refuses one.

        Without `wait`, return once the request is sent (a kept session's queued messages
        come before the answer, which may take long); a refusal is then only logged."""
        # Retained messages only for a subscription the session did not have yet: a
        # reconnect must not bring the same retained value again.
        options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        rc, mid = self._client.subscribe([(f, options) for f in filters])
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerError(f"cannot subscribe: {paho.error_string(rc)}")
        future: asyncio.Future[list[int]] = self._loop.create_future()
        self._subscribed[mid] = future
        if not wait:
            future.add_done_callback(functools.partial(_log_refusal, filters))
            return
        try:
            async with asyncio.timeout(timeout):
                granted = await future
        except TimeoutError:
            raise BrokerError(f"no answer to SUBSCRIBE within {timeout:g} s") from None
        refused = _refused(filters, granted)
        if refused:
            raise BrokerError(f"the broker refused the subscription to {', '.join(refused)}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a message; returns its packet id (on_published(mid) follows its PUBACK)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            raise BrokerError(f"cannot publish to {topic}: {paho.error_string(info.rc)}")
        return int(info.mid)

    def ack(self, mid: int, qos: int = 1) -> None:
        if self.connected:
            self._client.ack(mid, qos)

    async def close(self, timeout: float = 2.0) -> None:
        """Send what is queued, then DISCONNECT (a session with an expiry is kept)."""
        if self.connected:
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self.lost)
        self._unwatch()
        self._close_socket()
        self._lost("closed")


def _refused(filters: list[str], granted: list[int]) -> list[str]:
    return [f for f, code in zip(filters, granted, strict=False) if code >= 0x80]


def _log_refusal(filters: list[str], future: asyncio.Future[list[int]]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    refused = _refused(filters, future.result())
    if refused:
        log.error("the broker refused the subscription to %s", ", ".join(refused))


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
