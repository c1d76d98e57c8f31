"""Modbus TCP collector: polls one device at its own interval, contiguous registers at once.

Each device runs in its own task with its own connection, so a slow or dead device delays
only itself. Exception responses, timeouts and lost connections become quality flags on
the device's process values (once per change of condition, not on every poll); a lost
connection or timeout also opens a collection gap for the device's machines until it
answers again. Values outside a signal's limits are flagged by conditioning. Storing is
the writer's job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import struct
import time

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from ingest.aio import raise_if_cancelled
from ingest.conditioning import Quality, Reading
from ingest.gaps import GapKeeper
from ingest.health import Health
from ingest.tagmap import RegisterField, RegisterRead, ResolvedModbus
from ingest.writer import Writer

log = logging.getLogger("mes.ingest.modbus")

_FORMAT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}


def decode(registers: list[int], fld: RegisterField) -> float | int | None:
    """The value of one field from the registers of its read; None if it is not a number."""
    width = 1 if fld.type in ("uint16", "int16") else 2
    words = registers[fld.offset:fld.offset + width]
    if fld.word_order == "little":
        words = words[::-1]
    raw = b"".join(word.to_bytes(2, fld.byte_order) for word in words)
    (value,) = struct.unpack(_FORMAT[fld.type], raw)
    if fld.type == "float32" and not math.isfinite(value):
        return None
    if fld.scale != 1.0 or fld.value_offset != 0.0:
        return float(value) * fld.scale + fld.value_offset
    return int(value) if fld.type != "float32" else float(value)


class ModbusCollector:
    def __init__(self, device: ResolvedModbus, writer: Writer,
                 health: Health | None = None, *, gaps: GapKeeper | None = None) -> None:
        self.device = device
        self.gaps = gaps
        self._answered_at: dt.datetime | None = None  # the last good answer
        self._latest: dict[str, Reading] = {}  # signal code -> its last reading
        self.name = device.device.name
        self.writer = writer
        self.health = health or writer.health
        self.polls = 0
        self.requests = 0
        # per read: the quality last reported for it (GOOD or a failure code)
        self._condition: dict[int, Quality] = {}
        self._unreachable = False  # a lost connection or timeout has been reported
        self._client: AsyncModbusTcpClient | None = None
        self.health.sources[self.name] = "starting"

    @property
    def timeout(self) -> float:
        return self.device.device.timeout_ms / 1000

    async def run(self) -> None:
        """Poll until cancelled."""
        interval = self.device.device.poll_interval_ms / 1000
        next_poll = time.monotonic()
        try:
            while True:
                await self.poll_once()
                raise_if_cancelled()
                next_poll += interval
                delay = next_poll - time.monotonic()
                if delay < 0:  # slower than the interval: skip the polls already missed
                    next_poll += math.ceil(-delay / interval) * interval
                    delay = next_poll - time.monotonic()
                await asyncio.sleep(delay)
        finally:
            self._close()

    async def poll_once(self) -> None:
        self.polls += 1
        readings: list[Reading] = []
        for index, read in enumerate(self.device.reads):
            readings += await self._read(index, read)
        self.writer.submit(readings)

    def latest_readings(self) -> list[Reading]:
        """The last reading of each register (its value, quality and time)."""
        return list(self._latest.values())

    async def _connect(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._close()
        device = self.device.device
        # Reconnecting is this loop's business, not the library's: no retries, no backoff.
        client = AsyncModbusTcpClient(device.host, port=device.port, timeout=self.timeout,
                                      retries=0, reconnect_delay=0)
        self._client = client
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the awaited call completes, and the collector would never stop.
        async with asyncio.timeout(self.timeout):
            connected = await client.connect()
        if not connected:
            raise ConnectionError(f"cannot connect to {device.host}:{device.port}")
        return client

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _read(self, index: int, read: RegisterRead) -> list[Reading]:
        device = self.device.device
        try:
            client = await self._connect()
            self.requests += 1
            call = (client.read_holding_registers if read.function == "holding"
                    else client.read_input_registers)
            async with asyncio.timeout(self.timeout):
                response = await call(read.start, count=read.count, device_id=device.unit)
        except TimeoutError:
            self._close()  # a late answer must not be taken for the next request's
            return self._failed(index, read, Quality.TIMEOUT,
                                f"no answer within {device.timeout_ms} ms")
        except (ModbusException, ConnectionError, OSError) as exc:
            self._close()
            quality = (Quality.TIMEOUT if "timeout" in str(exc).lower() else
                       Quality.COMMUNICATION_LOST)
            return self._failed(index, read, quality, str(exc) or type(exc).__name__)
        now = dt.datetime.now(dt.UTC)
        if response.isError():
            code = getattr(response, "exception_code", None)
            return self._failed(index, read, Quality.DEVICE_EXCEPTION,
                                f"exception code {code} for {read.function} registers "
                                f"{read.start}-{read.start + read.count - 1}")
        registers = list(response.registers)
        if len(registers) < read.count:
            return self._failed(index, read, Quality.BAD,
                                f"{len(registers)} registers in the answer, {read.count} asked")
        self._recovered(index)
        self._answered_at = now
        if self.gaps is not None:
            self.gaps.flowing(self.name)
        readings = []
        latest = self._latest
        for fld in read.fields:
            value = decode(registers, fld)
            quality = Quality.GOOD if value is not None else Quality.BAD
            reason = None
            if fld.reason_offset is not None:
                reason = registers[fld.reason_offset]
            reading = Reading(fld.binding, now, value, quality, reason)
            latest[fld.binding.signal.code] = reading
            readings.append(reading)
        return readings

    def _failed(self, index: int, read: RegisterRead, quality: Quality,
                why: str) -> list[Reading]:
        state = f"{quality.name.lower()}: {why}"
        self.health.sources[self.name] = state
        now = dt.datetime.now(dt.UTC)
        if self.gaps is not None and quality in (Quality.COMMUNICATION_LOST, Quality.TIMEOUT):
            self.gaps.lost(self.name, self._answered_at or now)
        if self._condition.get(index) == quality:
            return []
        self._condition[index] = quality
        # A lost device fails every read of the poll: one line for the device, not one per
        # read; an exception response is about its read.
        device_wide = quality in (Quality.COMMUNICATION_LOST, Quality.TIMEOUT)
        if not device_wide or not self._unreachable:
            log.warning("%s (%s:%d unit %d): %s", self.name, self.device.device.host,
                        self.device.device.port, self.device.device.unit, state)
        self._unreachable = self._unreachable or device_wide
        failed = []
        for f in read.fields:
            reading = Reading(f.binding, now, None, quality)
            self._latest[f.binding.signal.code] = reading
            if f.binding.kind == "process_value":
                failed.append(reading)
        return failed

    def _recovered(self, index: int) -> None:
        previous = self._condition.get(index)
        if previous != Quality.GOOD:
            if previous is not None and (self._unreachable or previous not in (
                    Quality.COMMUNICATION_LOST, Quality.TIMEOUT)):
                log.info("%s: answering again", self.name)
            self._unreachable = False
            self._condition[index] = Quality.GOOD
        if all(q == Quality.GOOD for q in self._condition.values()):
            self.health.sources[self.name] = "polling"
