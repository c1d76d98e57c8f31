"""The on-disk store-and-forward spool: batches the database could not take, in order.

Each batch is one file, written to a temporary name, flushed to disk and renamed, so a
crash leaves either a whole batch or none. The spool is bounded in bytes; what does not
fit is refused and the caller counts it as lost. Replaying to the database is the
writer's job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.conditioning import Rows

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)
_SUFFIX = ".batch.json"


def _micros(ts: dt.datetime) -> int:
    return (ts - _EPOCH) // _MICRO


def _instant(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def encode(rows: Rows) -> bytes:
    data = {
        "process_value": [[_micros(r[0]), *r[1:]] for r in rows.process_value],
        "equipment_state": [[_micros(r[0]), *r[1:]] for r in rows.equipment_state],
        "production_count": [[_micros(r[0]), *r[1:]] for r in rows.production_count],
    }
    # The collection records only when there are any: batches spooled before they existed
    # read the same.
    if rows.counter_discontinuity:
        data["counter_discontinuity"] = [[_micros(r[0]), *r[1:]]
                                         for r in rows.counter_discontinuity]
    if rows.unknown_state:
        data["unknown_state"] = [[_micros(r[0]), *r[1:]] for r in rows.unknown_state]
    if rows.collection_gap:
        data["collection_gap"] = [[_micros(r[0]), r[1], r[2], r[3],
                                   None if r[4] is None else _micros(r[4])]
                                  for r in rows.collection_gap]
    return json.dumps(data, separators=(",", ":")).encode()


def decode(data: bytes) -> Rows:
    raw = json.loads(data)
    return Rows(
        process_value=[(_instant(r[0]), r[1], r[2], r[3]) for r in raw["process_value"]],
        equipment_state=[(_instant(r[0]), r[1], r[2], r[3]) for r in raw["equipment_state"]],
        production_count=[(_instant(r[0]), r[1], r[2], r[3]) for r in raw["production_count"]],
        counter_discontinuity=[(_instant(r[0]), r[1], r[2], r[3], r[4], r[5])
                               for r in raw.get("counter_discontinuity", ())],
        unknown_state=[(_instant(r[0]), r[1], r[2]) for r in raw.get("unknown_state", ())],
        collection_gap=[(_instant(r[0]), r[1], r[2], r[3],
                         None if r[4] is None else _instant(r[4]))
                        for r in raw.get("collection_gap", ())],
    )


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    rows: Rows


class SpoolFull(RuntimeError):
    pass


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()  # a batch whose write a crash interrupted was never acknowledged
        files = self._files()
        self._next = int(files[-1].name.split(".")[0]) + 1 if files else 0
        self.bytes = sum(f.stat().st_size for f in files)
        self.batches = len(files)
        self.rows = sum(len(b.rows) for b in self.batches_in_order()) if files else 0

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SUFFIX}"))

    def __bool__(self) -> bool:
        return self.batches > 0

    def append(self, rows: Rows) -> None:
        data = encode(rows)
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolFull(f"spool {self.directory} is full ({self.bytes} of "
                            f"{self.max_bytes} bytes); {len(rows)} rows cannot be kept")
        final = self.directory / f"{self._next:012d}{_SUFFIX}"
        temporary = final.with_suffix(".tmp")
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        temporary.rename(final)
        self._next += 1
        self.bytes += len(data)
        self.batches += 1
        self.rows += len(rows)

    def batches_in_order(self) -> Iterator[SpooledBatch]:
        for path in self._files():
            yield SpooledBatch(path, decode(path.read_bytes()))

    def remove(self, batch: SpooledBatch) -> None:
        size = batch.path.stat().st_size
        batch.path.unlink()
        self.bytes -= size
        self.batches -= 1
        self.rows -= len(batch.rows)
