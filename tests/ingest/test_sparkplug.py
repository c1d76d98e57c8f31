"""The Sparkplug B payload: numbers of every width and sign survive encoding and decoding;
what is no number, or no payload, is said so."""

from __future__ import annotations

import pytest

from ingest import sparkplug


def test_sparkplug_payloads_round_trip_with_signed_and_unsigned_numbers() -> None:
    data = sparkplug.encode([
        sparkplug.MetricOut(-5, sparkplug.INT32, name="State", alias=1, timestamp=1000),
        sparkplug.MetricOut(4_294_967_295, sparkplug.UINT32, alias=2),
        sparkplug.MetricOut(-2, sparkplug.INT64, alias=3),
        sparkplug.MetricOut(None, sparkplug.DOUBLE, alias=4),
        sparkplug.MetricOut(True, sparkplug.BOOLEAN, alias=5, historical=True),
    ], timestamp=2000, seq=255)
    payload = sparkplug.decode(data)
    assert (payload.seq, payload.timestamp) == (255, 2000)
    assert [sparkplug.number(m) for m in payload.metrics] == [-5, 4_294_967_295, -2, None, 1]
    assert payload.metrics[0].name == "State" and payload.metrics[4].is_historical
    # An Int8 sent in its own width (0xFB) reads as -5 too.
    int8 = sparkplug.decode(sparkplug.encode(
        [sparkplug.MetricOut(0xFB, sparkplug.INT8, alias=1)], 0)).metrics[0]
    assert sparkplug.number(int8) == -5


def test_what_is_no_sparkplug_number_is_said_so() -> None:
    with pytest.raises(sparkplug.PayloadError, match="not a Sparkplug B payload"):
        sparkplug.decode(b"\xff\xff\xff")
    payload = sparkplug.decode(sparkplug.encode([], 0))
    metric = payload.metrics.add(alias=1, datatype=sparkplug.STRING, string_value="n/a")
    with pytest.raises(sparkplug.NotANumber, match="a string value"):
        sparkplug.number(metric)
    assert sparkplug.parse_topic("spBv1.0/G/DDATA/N/D") == ("G", "DDATA", "N", "D")
    assert sparkplug.parse_topic("spBv1.0/STATE/host") is None
    assert sparkplug.parse_topic("plant/line-1/temperature") is None
