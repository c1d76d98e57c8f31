"""Small asyncio helpers the collectors share."""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Honour a cancellation the running task has been asked for but did not receive.

    On Python 3.11 a cancellation that arrives as an `asyncio.timeout` expires is turned
    into the TimeoutError and lost; the task still counts it, so a loop that catches the
    timeout would otherwise run on forever after being told to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
