"""Small asyncio helpers the collectors share."""

from __future__ import annotations

import asyncio
import signal


def raise_if_cancelled() -> None:
    """Honour a cancellation the running task has been asked for but did not receive.

    On Python 3.11 a cancellation that arrives as an `asyncio.timeout` expires is turned
    into the TimeoutError and lost; the task still counts it, so a loop that catches the
    timeout would otherwise run on forever after being told to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    try:
        async with asyncio.timeout(seconds):
            await stop.wait()
    except TimeoutError:
        raise_if_cancelled()


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask for a clean stop: everything queued is flushed first."""
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
