"""The spool: batches the database could not take stay on disk, whole and in order.

No database here: the spool is files in a folder, re-opened as a restarted collector would.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ingest.conditioning import Quality, Rows
from ingest.spool import Spool, SpoolFull, decode, encode

T0 = dt.datetime(2026, 3, 2, 6, 0, 0, 123_457, tzinfo=dt.UTC)
BERLIN_WINTER = dt.timezone(dt.timedelta(hours=1))


def batch(first_signal: int, n: int = 3) -> Rows:
    """Rows of all three tables, told apart by their signal and equipment ids."""
    return Rows(
        process_value=[(T0 + dt.timedelta(microseconds=i), first_signal + i, 20.5 + i,
                        Quality.GOOD) for i in range(n)],
        equipment_state=[(T0, first_signal, 1, None)],
        production_count=[(T0, first_signal, 5, 1)],
    )


def spooled(spool: Spool) -> list[Rows]:
    return [b.rows for b in spool.batches_in_order()]


def batch_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_encode_decode_keeps_every_row_exactly() -> None:
    rows = Rows(
        process_value=[
            (T0, 1, 21.25, Quality.GOOD),
            (dt.datetime(2026, 3, 2, 7, 0, 0, 999_999, tzinfo=BERLIN_WINTER), 2, None,
             Quality.COMMUNICATION_LOST),
            (dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC), 3, -1e-7,
             Quality.OUT_OF_RANGE),
            (T0, 4, 0.1 + 0.2, Quality.UNCERTAIN),
        ],
        equipment_state=[(T0, 11, 5, 42), (T0 + dt.timedelta(microseconds=1), 11, 1, None)],
        production_count=[(T0, 11, 2**31, 0), (T0, 12, 0, 3)],
    )
    decoded = decode(encode(rows))

    assert decoded == rows
    for ts, *_ in decoded.process_value + decoded.equipment_state + decoded.production_count:
        assert ts.tzinfo == dt.UTC
    # 07:00:00.999999 at UTC+1 is the same instant at 06:00:00.999999 UTC.
    assert decoded.process_value[1][0] == dt.datetime(2026, 3, 2, 6, 0, 0, 999_999,
                                                      tzinfo=dt.UTC)
    assert decoded.process_value[2][0].microsecond == 999_999
    assert decoded.equipment_state[1][3] is None


def test_an_empty_batch_round_trips() -> None:
    assert decode(encode(Rows())) == Rows()


def test_batches_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    first = Spool(folder, max_bytes=1_000_000)
    assert not first
    a, b, c = batch(100), batch(200, n=1), batch(300, n=5)
    first.append(a)
    first.append(b)

    reopened = Spool(folder, max_bytes=1_000_000)
    assert bool(reopened)
    assert (reopened.batches, reopened.rows) == (2, len(a) + len(b)) == (2, 8)
    assert reopened.bytes == first.bytes == len(encode(a)) + len(encode(b))
    assert spooled(reopened) == [a, b]

    reopened.append(c)
    assert batch_files(folder) == [f"{n:012d}.batch.json" for n in range(3)]
    assert spooled(Spool(folder, max_bytes=1_000_000)) == [a, b, c]
    assert (reopened.batches, reopened.rows) == (3, 15)
    assert reopened.bytes == sum(p.stat().st_size for p in folder.iterdir())


def test_remove_updates_the_counters(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    a, b = batch(100), batch(200, n=1)
    spool.append(a)
    spool.append(b)

    oldest = next(spool.batches_in_order())
    assert oldest.rows == a
    spool.remove(oldest)
    assert (spool.batches, spool.rows, spool.bytes) == (1, len(b), len(encode(b)))
    assert spooled(spool) == [b]
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    assert (reopened.batches, reopened.rows, reopened.bytes) == (1, len(b), len(encode(b)))

    [last] = spool.batches_in_order()
    spool.remove(last)
    assert (spool.batches, spool.rows, spool.bytes) == (0, 0, 0)
    assert not spool
    assert batch_files(tmp_path) == []


def test_a_full_spool_refuses_the_batch_and_leaves_nothing_behind(tmp_path: Path) -> None:
    a, b = batch(100), batch(200)
    spool = Spool(tmp_path, max_bytes=len(encode(a)) + len(encode(b)) - 1)
    spool.append(a)
    files = batch_files(tmp_path)

    with pytest.raises(SpoolFull, match=f"{len(b)} rows cannot be kept"):
        spool.append(b)

    assert batch_files(tmp_path) == files == ["000000000000.batch.json"]
    assert (spool.batches, spool.rows, spool.bytes) == (1, len(a), len(encode(a)))
    assert spooled(spool) == [a]


def test_a_batch_that_fits_exactly_is_kept(tmp_path: Path) -> None:
    a, b = batch(100), batch(200)
    spool = Spool(tmp_path, max_bytes=len(encode(a)) + len(encode(b)))
    spool.append(a)
    spool.append(b)
    assert spool.bytes == spool.max_bytes
    assert spooled(spool) == [a, b]


def test_a_torn_write_is_removed_at_open_and_not_replayed(tmp_path: Path) -> None:
    a, b, c = batch(100), batch(200), batch(300)
    Spool(tmp_path, max_bytes=1_000_000).append(a)
    # A crash between write and rename leaves the next batch under its temporary name.
    torn = tmp_path / "000000000001.batch.tmp"
    torn.write_bytes(encode(b)[:25])
    whole_but_unrenamed = tmp_path / "000000000002.batch.tmp"
    whole_but_unrenamed.write_bytes(encode(b))

    spool = Spool(tmp_path, max_bytes=1_000_000)
    assert batch_files(tmp_path) == ["000000000000.batch.json"]
    assert (spool.batches, spool.rows, spool.bytes) == (1, len(a), len(encode(a)))
    assert spooled(spool) == [a]

    spool.append(c)
    assert spooled(spool) == [a, c]
