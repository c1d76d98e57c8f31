"""Collection gaps: spans in which a machine's data may be missing, recorded per source.

A gap opens when a source is lost, when the collector stops or crashes (found at the next
start from the last durable write), and closes when data from that source flows again.
The rows go through the writer with the data, so they are spooled like it. Spool overflow
gaps are the writer's own business; deciding what a gap means for OEE is the pipelines'.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ingest.conditioning import GapRow

log = logging.getLogger("mes.ingest.gaps")

SOURCE_LOST = "source_lost"
COLLECTOR_STOPPED = "collector_stopped"
COLLECTOR_CRASHED = "collector_crashed"
SPOOL_OVERFLOW = "spool_overflow"
MESSAGE_LOST = "message_lost"


class GapRecorder(Protocol):
    def record(self, gaps: list[GapRow]) -> None: ...


@dataclass
class _Open:
    since: dt.datetime | None  # None: a gap of an earlier run, its start unknown here
    cause: str
    written: bool  # False: opened by an earlier run; only its closing is ours


def describe_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class GapKeeper:
    """Which sources are in a gap, and the rows that open and close them.

    `flowing` is called with every delivery of data, so it costs one dictionary lookup
    while nothing is open.
    """

    def __init__(self, recorder: GapRecorder,
                 machines_by_source: Mapping[str, Mapping[int, str]]) -> None:
        self._recorder = recorder
        self._machines = {source: dict(machines) for source, machines in
                          machines_by_source.items()}
        self._open: dict[str, _Open] = {}

    @property
    def open_sources(self) -> dict[str, str]:
        """source -> cause of its open gap."""
        return {source: gap.cause for source, gap in self._open.items()}

    def machines(self, source: str) -> list[str]:
        return sorted(self._machines.get(source, {}).values())

    def lost(self, source: str, since: dt.datetime, cause: str = SOURCE_LOST) -> None:
        """Open a gap for each machine of `source` from `since`, unless one is open."""
        if source in self._open or not self._machines.get(source):
            return
        self._open[source] = _Open(since, cause, True)
        self._recorder.record([(since, equipment_id, source, cause, None)
                               for equipment_id in self._machines[source]])

    def carried(self, source: str, since: dt.datetime | None, cause: str) -> None:
        """A gap an earlier run left open in the database: close it when data flows."""
        if self._machines.get(source):
            self._open.setdefault(source, _Open(since, cause, False))

    def flowing(self, source: str) -> None:
        """Data from `source` arrived: close its gap, if it has one."""
        if source not in self._open:
            return
        gap = self._open.pop(source)
        now = dt.datetime.now(dt.UTC)
        self._recorder.record([(now, equipment_id, source, None, None)
                               for equipment_id in self._machines[source]])
        if gap.since is not None:
            log.info("%s: data flows again after a collection gap of %s (%s since %s), "
                     "covering %s", source,
                     describe_duration(max(0.0, (now - gap.since).total_seconds())),
                     gap.cause.replace("_", " "), f"{gap.since:%Y-%m-%d %H:%M:%S} UTC",
                     ", ".join(self.machines(source)))

    def stopping(self, last_seen: Mapping[str, float]) -> None:
        """The collector stops cleanly: a gap opens for every source not already in one,
        from the last data it delivered; the next start closes them as data flows again."""
        now = dt.datetime.now(dt.UTC)
        for source in self._machines:
            seen = last_seen.get(source)
            since = now if seen is None else dt.datetime.fromtimestamp(seen, dt.UTC)
            self.lost(source, since, COLLECTOR_STOPPED)


@dataclass(frozen=True)
class RunRecord:
    """What a run leaves for the next one: whether it stopped cleanly, and per source the
    last time its data was durably stored (written or spooled)."""

    marker: Path    # exists while a collector runs: found at a start, the last one crashed
    progress: Path  # source -> last durable data (epoch seconds); when it stopped

    def read_progress(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.progress.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data

    def write_progress(self, durable: Mapping[str, float], stopped_at: float | None = None,
                       ) -> None:
        data: dict[str, Any] = {"durable": dict(durable)}
        if stopped_at is not None:
            data["stopped_at"] = stopped_at
        temporary = self.progress.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(self.progress)

    def previous_pid(self) -> int | None:
        try:
            return int(self.marker.read_text().strip() or 0) or None
        except (FileNotFoundError, ValueError):
            return None

    def started(self) -> None:
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(str(os.getpid()))

    def stopped(self) -> None:
        self.marker.unlink(missing_ok=True)


def _when(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def resume(gaps: GapKeeper, record: RunRecord, sources: Iterable[str]) -> dict[str, float]:
    """At a start: open the gaps a crash left, or take over those a clean stop opened.

    Returns the durable progress recorded so far (to carry on from)."""
    progress = record.read_progress()
    durable: dict[str, float] = {str(k): float(v) for k, v in
                                 progress.get("durable", {}).items()}
    crashed_pid = record.previous_pid()
    sources = list(sources)
    if crashed_pid is not None:
        covered = []
        for source in sources:
            if source in durable:
                gaps.lost(source, _when(durable[source]), COLLECTOR_CRASHED)
                covered.append(f"{source} since {_when(durable[source]):%H:%M:%S} UTC "
                               f"({', '.join(gaps.machines(source))})")
            else:
                gaps.carried(source, None, COLLECTOR_CRASHED)
        log.warning("the previous collector (pid %d) did not stop cleanly; collection gaps "
                    "from its last durable write: %s", crashed_pid,
                    "; ".join(covered) or "none recorded")
    else:
        stopped = progress.get("stopped_at")
        for source in sources:
            since = durable.get(source, stopped)
            gaps.carried(source, None if since is None else _when(float(since)),
                         COLLECTOR_STOPPED)
        if stopped is not None:
            log.info("the previous collector stopped cleanly at %s UTC; its collection gaps "
                     "close as data flows again", f"{_when(float(stopped)):%Y-%m-%d %H:%M:%S}")
    return durable
