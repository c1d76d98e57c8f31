"""Delivers work requests to the CMMS: one JSON file per request in an outbox folder
(written beside, then renamed, so a reader never sees half a file) and, when a URL is
configured, an HTTP POST of the same JSON with retries and backoff.

Records each attempt on the request (`sent_at`, `send_attempts`, `last_error`). A request
not delivered stays unsent and is tried again next time. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from transactional.models import WorkRequest


@dataclass(frozen=True)
class Delivery:
    """Where requests go: an outbox folder, a URL, or both; how hard to try a POST."""

    outbox: Path | None = None
    url: str | None = None
    attempts: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0


@dataclass
class DeliveryReport:
    written: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        text = f"{len(self.written)} written to the outbox, {len(self.sent)} posted"
        if self.failed:
            text += ", not delivered: " + "; ".join(f"{code} ({error})"
                                                    for code, error in self.failed.items())
        return text


def document(request: WorkRequest) -> bytes:
    """The request as the CMMS receives it: its payload with the current status."""
    body: dict[str, Any] = {**request.payload, "status": request.status,
                            "external_id": request.external_id}
    return json.dumps(body, indent=2, sort_keys=True).encode()


def write_atomically(folder: Path, name: str, content: bytes) -> Path:
    """`folder/name` with `content`, appearing whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        target = folder / name
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def post(url: str, content: bytes, timeout: float) -> None:
    """POST `content` as JSON; raises OSError (URLError, HTTPError) when not accepted."""
    request = urllib.request.Request(url, data=content, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}")


def deliver(session: Session, delivery: Delivery, *,
            sleep: Callable[[float], None] = time.sleep) -> DeliveryReport:
    """Write and post every request not yet delivered (new, or updated since it was sent).

    The backoff doubles after each failed attempt. Without a URL, a request counts as
    sent once its file is in the outbox."""
    report = DeliveryReport()
    unsent = session.scalars(select(WorkRequest).where(WorkRequest.sent_at.is_(None))
                             .order_by(WorkRequest.id).with_for_update(skip_locked=True)).all()
    for request in unsent:
        content = document(request)
        if delivery.outbox is not None:
            write_atomically(delivery.outbox, f"{request.code}.json", content)
            report.written.append(request.code)
        if delivery.url is None:
            if delivery.outbox is not None:
                request.sent_at = dt.datetime.now(dt.UTC)
            continue
        wait = delivery.backoff_seconds
        for attempt in range(1, delivery.attempts + 1):
            request.send_attempts += 1
            try:
                post(delivery.url, content, delivery.timeout_seconds)
            except (OSError, ValueError) as error:
                request.last_error = f"{type(error).__name__}: {error}"[:500]
                if attempt < delivery.attempts:
                    sleep(wait)
                    wait *= 2
                continue
            request.sent_at = dt.datetime.now(dt.UTC)
            request.last_error = None
            report.sent.append(request.code)
            break
        else:
            report.failed[request.code] = request.last_error or "not accepted"
    session.flush()
    return report
