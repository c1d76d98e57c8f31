"""The ingest bench's figures as a table: each figure beside its baseline or target.

Formatting only: the figures and the verdicts' thresholds come from the run's results.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str]  # figure, measured, baseline or target, verdict


def _n(value: float, unit: str = "", decimals: int | None = None) -> str:
    if decimals is None:
        decimals = 0 if abs(value) >= 100 else 1
    return f"{value:,.{decimals}f} {unit}".rstrip()


def _ms(value: float) -> str:
    return _n(value, "ms", 1)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _throughput(t: dict[str, Any]) -> list[Row]:
    writer, ceiling = t["writer_rows_per_second"], t["ceiling_rows_per_second"]
    return [
        ("project Writer: queue, conditioning, COPY (best round)", _n(writer, "rows/s"),
         f"ceiling {_n(ceiling, 'rows/s')}", ""),
        ("ratio Writer / ceiling", f"{t['writer_to_ceiling']:.2f}",
         f"target >= {t['writer_to_ceiling_target']:.2f}",
         _verdict(t["writer_to_ceiling"] >= t["writer_to_ceiling_target"])),
        ("ceiling: server COPY from a file (best round)", _n(ceiling, "rows/s"),
         "the database's own limit", ""),
        ("ratio of the medians", f"{t['writer_to_ceiling_median']:.2f}",
         f"Writer {_n(t['writer_median_rows_per_second'])}, ceiling "
         f"{_n(t['ceiling_median_rows_per_second'])}", ""),
        (f"raw psycopg binary COPY, {t['raw_copy_transaction_rows']:,}-row transactions",
         _n(t["raw_copy_rows_per_second"], "rows/s"), f"ceiling {_n(ceiling, 'rows/s')}", ""),
        (f"plain executemany INSERT, {t['executemany_rows']:,} rows",
         _n(t["executemany_rows_per_second"], "rows/s"),
         f"Writer {_n(writer, 'rows/s')}", ""),
        ("Writer, each round", ", ".join(_n(r) for r in t["writer_rounds_rows_per_second"]),
         "ceiling: " + ", ".join(_n(r) for r in t["ceiling_rounds_rows_per_second"]), ""),
    ]


def _storage(s: dict[str, Any]) -> list[Row]:
    reference = s["reference_bytes_per_row"]
    return [
        ("bytes per stored sample, data + indexes", _n(s["bytes_per_row"], "B", 1),
         f"narrow-row reference {reference} B", _verdict(s["bytes_per_row"] <= reference)),
        ("  of which table / indexes",
         f"{s['table_bytes_per_row']:.1f} / {s['index_bytes_per_row']:.1f} B",
         f"{s['rows']:,} rows, {s['total_bytes'] / 2**20:,.1f} MiB", ""),
    ]


def _latency(latency: dict[str, Any]) -> list[Row]:
    target = latency["target_p99_ms"]
    rows: list[Row] = []
    for run in latency["runs"]:
        rate = f"{run['rate_per_second']:,} changes/s"
        rows += [
            (f"{rate}: p50", _ms(run["p50_ms"]), f"p90 {_ms(run['p90_ms'])}, "
             f"max {_ms(run['max_ms'])}", ""),
            (f"{rate}: p99", _ms(run["p99_ms"]), f"target < {target:g} ms",
             _verdict(run["p99_ms"] < target)),
            (f"{rate}: changes written / rows seen", f"{run['written']:,} / {run['seen']:,}",
             "must be equal", _verdict(run["lost"] == 0)),
        ]
    return rows


def _capacity(c: dict[str, Any]) -> list[Row]:
    opcua, modbus, speed = c["opcua"], c["modbus"], c["speed"]
    target = opcua["target_per_second"]
    stops = opcua["stops_keeping_up_at"]
    sustained = opcua["sustained_per_second"]
    if sustained >= target:
        verdict = "ok"
    elif opcua["limited_by"] == "collector":
        verdict = "MISSED"
    else:
        verdict = "offered load below target"
    rows: list[Row] = [
        (f"OPC UA notifications/s one collector sustains ({opcua['nodes']:,} nodes)",
         ("" if opcua["limited_by"] == "collector" else ">= ") + _n(sustained, "/s"),
         f"target >= {_n(target, '/s')}", verdict),
        ("  stops keeping up at", "-" if stops is None else _n(stops, "/s"),
         f"limited by: {opcua['limited_by']}", ""),
    ]
    if opcua["per_core_estimate"] is not None:
        rows.append(("  collector CPU there -> one full core (extrapolated)",
                     f"{opcua['collector_cpu_percent_at_sustained']:.0f} % -> "
                     f"{_n(opcua['per_core_estimate'], '/s')}", "from its CPU time", ""))
    for step in opcua["steps"]:
        offered = ("flat out" if step["offered_rate"] is None
                   else _n(step["offered_rate"], "/s"))
        rows.append((f"  offered {offered}: written -> received",
                     f"{_n(step['written_per_second'])} -> {_n(step['received_per_second'])}",
                     f"lost {step['lost']}, dropped {step['dropped']}, CPU simulator "
                     f"{step['simulator_cpu_percent']:.0f} % / collector "
                     f"{step['collector_cpu_percent']:.0f} %",
                     "keeps up" if step["keeps_up"] else "behind"))
    rows += [
        (f"Modbus requests/s ({modbus['devices']} devices, every "
         f"{modbus['poll_interval_ms']} ms)", _n(modbus["requests_per_second"], "/s"),
         f"asked {_n(modbus['asked_requests_per_second'], '/s')}",
         _verdict(modbus["requests_per_second"] >= 0.9 * modbus["asked_requests_per_second"])),
        ("Modbus registers/s", _n(modbus["registers_per_second"], "/s"),
         "one request per device block", ""),
    ]
    mqtt = c.get("mqtt")
    if mqtt is not None:
        rows += [
            (f"MQTT: a subscriber that only counts and acknowledges ({mqtt['messages']:,} "
             "messages)", _n(mqtt["raw_messages_per_second"], "msg/s"), "baseline", ""),
            (f"MQTT collector, Sparkplug B, {mqtt['metrics_per_message']} metrics/message, "
             "acknowledged after COMMIT", _n(mqtt["collector_messages_per_second"], "msg/s"),
             f"{mqtt['collector_to_raw']:.2f} of the baseline, CPU "
             f"{mqtt['collector_cpu_percent']:.0f} %", ""),
            ("  metrics/s stored", _n(mqtt["collector_metrics_per_second"], "/s"),
             f"rows {mqtt['rows_written']:,} of {mqtt['metrics']:,}, dropped "
             f"{mqtt['dropped']}, rejected {mqtt['rejected']}",
             _verdict(mqtt["rows_written"] == mqtt["metrics"] and mqtt["dropped"] == 0)),
            ("  publishing the backlog (one publisher, QoS 1)",
             _n(mqtt["publish_messages_per_second"], "msg/s"), "", ""),
        ]
    tried = ", ".join(f"{s['speed']:g}" for s in speed["steps"])
    best = speed["max_speed_kept_up"]
    rows.append(("largest simulator speed one collector keeps up with",
                 "none" if best is None else f"{best:g}x",
                 f"tried {tried}; limited by: {speed['limited_by']}", ""))
    for step in speed["steps"]:
        pace = ("" if step["simulator_kept_pace"] else
                f"; {step['ticks']:,} of {step['ticks_due']:,} ticks played")
        rows.append((f"  speed {step['speed']:g}: changes served/s",
                     _n(step["served_per_second"], "/s"),
                     f"values stored {step['stored_process_values']:,} of "
                     f"{step['served_process_values']:,}{pace}",
                     "keeps up" if step["keeps_up"] else "behind"))
    return rows


def _deadband(d: dict[str, Any]) -> list[Row]:
    base = d["rows_without_deadband"]
    rows: list[Row] = [("process-value rows without a deadband", f"{base:,}",
                        f"{d['process_values']} signals, "
                        f"{d['simulated_seconds'] / 60:g} simulated min", "")]
    for variant in d["deadbands"]:
        rows.append((f"  with a deadband of {variant['deadband_percent']:g} % of range",
                     f"{variant['rows']:,}", f"saves {variant['saved_percent']:.1f} %", ""))
    return rows


def render(results: dict[str, Any]) -> str:
    sizes = results["sizes"]
    t = results["throughput"]
    sections: list[tuple[str, list[Row]]] = [
        (f"Writer throughput: {t['rows']:,} samples of {t['signals']:,} signals, "
         f"best of {t['rounds']} alternating round{'s' if t['rounds'] != 1 else ''}",
         _throughput(t)),
        ("Storage after the Writer's run", _storage(results["storage"])),
        (f"End-to-end latency: simulator -> OPC UA -> collector -> database "
         f"({sizes['latency_seconds']:g} s each, first "
         f"{sizes['latency_discard_seconds']:g} s discarded)", _latency(results["latency"])),
        ("Capacity of one collector process", _capacity(results["capacity"])),
        ("Deadband savings on the simulator's process values", _deadband(results["deadband"])),
    ]
    header: Row = ("figure", "measured", "baseline / target", "")
    every = [header] + [row for _, rows in sections for row in rows]
    widths = [max(len(row[i]) for row in every) for i in range(3)]

    def line(row: Row) -> str:
        return (f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  "
                f"{row[3]}").rstrip()

    out = [f"mes bench ingest: scratch database {results['database']} (dropped), "
           f"{results['seconds']:g} s", "", line(header)]
    for title, rows in sections:
        out += ["", title, *map(line, rows)]
    return "\n".join(out)
