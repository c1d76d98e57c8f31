"""The demo's data: the sample plant, products, orders and maintenance windows, a morning's
work on the shop floor, the line simulator with both collectors, and today's KPIs derived.

`mes demo` produces it with `first_data` and then serves the dashboards; tests call the same
function to get the demo's data into a test database. The first line of the plant is read
over OPC UA and the others over Modbus, so both collectors run; `mes simulate` and
`mes collect` are the long-running versions. Nothing here prints except through `echo`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy.orm import Session

from ingest.collect import CollectorFiles, build, plant_signals, run
from ingest.simulator.runner import Simulator
from ingest.simulator.tagmap import simulator_tag_map
from ingest.store import machine_activity
from ingest.tagmap import PlantSignal, TagMap, TagMapFile, resolve
from mes.acting import transaction
from mes.db import database_url
from mes.settings import get_settings
from pipelines.materialize import DayResult, derive_days
from transactional import orders, overview
from transactional.audit import acting
from transactional.dispatch import dispatch_list
from transactional.erp_import import import_orders
from transactional.errors import NotFound
from transactional.labor import sign_on
from transactional.lookup import by_code
from transactional.lots import add_location, consume, receive
from transactional.maintenance import import_window_file
from transactional.models import StorageLocation
from transactional.people import person_by_badge
from transactional.permissions import ADMINISTRATION
from transactional.plant import load_plant
from transactional.plant_file import PlantDefinition, read_plant_file
from transactional.products import load_products, read_products_file
from transactional.quality import record_inspection

Echo = Callable[[str], None]
SAMPLES = Path(str(resources.files("mes") / "samples"))
SAMPLE_PLANT = SAMPLES / "plant.toml"


@contextmanager
def _administration() -> Iterator[Session]:
    """One transaction with the owner's rights, as the administration account: the demo
    holds the owner's credentials, as `mes plant load` does."""
    with transaction(owner=True) as opened:
        acting(opened, ADMINISTRATION)
        yield opened


def load_samples(echo: Echo) -> None:
    """The sample plant and products, three orders from an ERP file (B2MML) and a CMMS's
    maintenance windows, each all or nothing and idempotent like their commands."""
    with _administration() as session:
        plant = load_plant(session, read_plant_file(SAMPLE_PLANT), source=str(SAMPLE_PLANT))
    echo(f"sample plant {SAMPLE_PLANT}: " + ("loaded" if plant.changed else "already loaded"))
    products = read_products_file(SAMPLES / "products.toml")
    with _administration() as session:
        loaded = load_products(session, products, source="sample products")
        imported = import_orders(session, SAMPLES / "orders.xml")
        windows = import_window_file(session, SAMPLES / "maintenance.json")
    echo("sample products: " + ("loaded" if loaded.changed else "already loaded"))
    echo(f"sample ERP orders (B2MML) {SAMPLES / 'orders.xml'}: {imported.summary()}")
    echo(f"sample maintenance windows: {windows.summary()}")


# The morning's work of `shop_floor`: who does it, on what, and the lots it makes.
PLANNER, PRESS_OPERATOR, SUPERVISOR = "4001", "1001", "3001"
STORES, LINE_SIDE = "STORES", "WIP-L1"
COIL = "COIL-0001"
STAMPED = {"4711": "RAW-4711-1", "4712": "RAW-4712-1"}


@dataclass(frozen=True)
class ShopFloor:
    """What the sample shift did: the machines it ran on and the lot it put on hold."""

    press: str
    paint: str
    running_run: int
    held_lot: str
    nonconformances: list[str]


def _free_machine(session: Session, line: str, preferred: Sequence[str]) -> str:
    """The first of `preferred` (else of `line`'s machines) that the dispatch list sees
    free now: not down, not busy, not locked out for maintenance (the sample windows fall
    on fixed days)."""
    plan = dispatch_list(session, line)
    free = [machine.machine for machine in plan.machines
            if machine.available and machine.free_from is not None
            and machine.free_from <= plan.at]
    for machine in [*preferred, *free]:
        if machine in free:
            return machine
    raise NotFound(f"no machine of line {line} is free now for the sample shift")


def _location(session: Session, code: str, name: str) -> None:
    try:
        by_code(session, StorageLocation, code, what="storage location")
    except NotFound:
        add_location(session, code, name)


def shop_floor(echo: Echo) -> ShopFloor | None:
    """A morning's work on the sample orders, through the services as the sample people:
    a coil received, order 4711 stamped (its lot then being painted, still running) and
    4712 stamped with a hole out of specification, so its lot is on hold. One transaction,
    all or nothing; None (and nothing done) once 4711 and 4712 are no longer new."""
    with _administration() as session:
        fresh = {order.code for order in overview.order_progress(session)
                 if order.status == "created" and order.runs == 0}
        if not {"4711", "4712"} <= fresh:
            echo("sample shift: already worked (orders 4711 and 4712 have moved on)")
            return None
        _location(session, STORES, "Raw material store")
        _location(session, LINE_SIDE, "Line-side buffer, line 1")

        acting(session, PLANNER)
        for order in ("4711", "4712"):
            orders.transition(session, order, "released")
        receive(session, COIL, "STEEL-COIL", 250, STORES, person_by_badge(session, PLANNER).id)

        acting(session, PRESS_OPERATOR)
        operator = person_by_badge(session, PRESS_OPERATOR).id
        press = _free_machine(session, "L1", ("PRESS-1", "PRESS-2"))
        sign_on(session, PRESS_OPERATOR, press)
        stamped = orders.start_run(session, "4711", "STAMP", press, PRESS_OPERATOR).id
        consume(session, COIL, 90, stamped, operator)
        for sample, hole in enumerate((8.01, 7.98), start=1):
            record_inspection(session, stamped, "hole diameter", sample, hole, PRESS_OPERATOR)
        orders.report(session, stamped, 496, 4)
        orders.complete_run(session, stamped, PRESS_OPERATOR, STAMPED["4711"], LINE_SIDE)

        second = orders.start_run(session, "4712", "STAMP", press, PRESS_OPERATOR).id
        consume(session, COIL, 40, second, operator)
        opened = [ncr.code for sample, hole in enumerate((8.02, 8.16), start=1)
                  for ncr in record_inspection(session, second, "hole diameter", sample, hole,
                                               PRESS_OPERATOR).nonconformances]
        orders.report(session, second, 148, 2)
        # The lot made after the hole out of specification goes on hold with it.
        orders.complete_run(session, second, PRESS_OPERATOR, STAMPED["4712"], LINE_SIDE)

        acting(session, SUPERVISOR)
        paint = _free_machine(session, "L2", ("PAINT-1",))
        sign_on(session, SUPERVISOR, paint)
        painting = orders.start_run(session, "4711", "FINISH", paint, SUPERVISOR).id
        consume(session, STAMPED["4711"], 200, painting, person_by_badge(session, SUPERVISOR).id)
        for sample, thickness in enumerate((61.5, 58.0, 63.2), start=1):
            record_inspection(session, painting, "coating thickness", sample, thickness,
                              SUPERVISOR, STAMPED["4711"])
        orders.report(session, painting, 180, 3)
    echo(f"sample shift: coil {COIL} received; 4711 stamped on {press} (lot "
         f"{STAMPED['4711']}), being painted on {paint} (run {painting}); 4712 stamped, lot "
         f"{STAMPED['4712']} on hold ({', '.join(opened)}: a hole out of specification)")
    return ShopFloor(press, paint, painting, STAMPED["4712"], opened)


def demo_tag_map(plant: PlantDefinition, signals: dict[str, PlantSignal],
                 opcua_port: int, modbus_port: int) -> TagMap:
    """The simulator's tag map with the first line on OPC UA and the rest on Modbus."""
    raw: dict[str, Any] = tomllib.loads(simulator_tag_map(
        plant, opcua_port=opcua_port, modbus_port=modbus_port, protocols=("opcua", "modbus")))
    line_of = {machine.code: machine.line for machine in plant.machines}
    first_line = plant.machines[0].line

    def on_first_line(signal_code: str) -> bool:
        signal = signals.get(signal_code)
        return signal is not None and line_of.get(signal.equipment_code) == first_line

    for source in raw["opcua"]:
        source["nodes"] = [n for n in source["nodes"] if on_first_line(n["signal"])]
    raw["modbus"] = [device for device in raw["modbus"]
                     if not any(on_first_line(r["signal"]) for r in device["registers"])]
    return resolve("demo tag map", TagMapFile.model_validate(raw), signals)


async def live_demo(plant: PlantDefinition, url: str, directory: Path, seconds: float,
                    echo: Echo, *, role: str | None, speed: float = 1.0) -> None:
    """Serve the plant from the simulator and collect it for `seconds`; on cancellation
    (Ctrl-C) the collectors still stop cleanly, writing what they hold. The simulator runs
    in real time by default: performance compares the parts made with the machines' ideal
    cycle times over the time they ran, so a faster clock would show it many times 100 %."""
    files = CollectorFiles(directory)
    signals = plant_signals(url, files, role)
    started = dt.datetime.now(dt.UTC)
    async with Simulator(plant, seed=0, speed=speed, opcua_port=0, modbus_port=0) as simulator:
        assert simulator.opcua_port is not None and simulator.modbus_port is not None
        tag_map = demo_tag_map(plant, signals, simulator.opcua_port, simulator.modbus_port)
        echo(f"line simulator at x{speed:g}: OPC UA {simulator.opcua_endpoint} "
             f"({len(tag_map.opcua[0].nodes)} nodes), Modbus TCP port {simulator.modbus_port} "
             f"({len(tag_map.modbus)} devices); collecting for {seconds:g} s")
        collection = build(tag_map, url, files, spool_max_bytes=1 << 28,
                           flush_rows=get_settings().flush_rows, role=role)
        clock = time.monotonic()

        def show(status: dict[str, Any]) -> None:
            echo(f"  {time.monotonic() - clock:4.0f} s  received "
                 f"{status.get('received_per_second', 0):>7.0f}/s  written "
                 f"{status['rows_written']:>7} rows  queue {status['queue_depth']:>4}  "
                 f"spool {status['spool_rows']}  database {status['database']}")

        stop = asyncio.Event()
        collecting = asyncio.create_task(run(collection, stop, files, on_status=show))
        try:
            await asyncio.sleep(seconds)
        finally:
            stop.set()
            await collecting
    with psycopg.connect(url) as conn:
        activity = machine_activity(conn, started)
    echo(f"\n{'machine':<10} {'state now':<14} {'changes':>7} {'good':>6} {'reject':>6} "
         f"{'samples':>8}")
    for code, state, changes, good, reject, samples in activity:
        echo(f"{code:<10} {state or '-':<14} {changes:>7} {good:>6} {reject:>6} {samples:>8}")


def collect(seconds: float, echo: Echo) -> None:
    """Run the simulator and both collectors on the sample plant for `seconds`, into the
    configured database, writing as `mes collect` does (MES_COLLECT_ROLE)."""
    settings = get_settings()
    asyncio.run(live_demo(read_plant_file(SAMPLE_PLANT), database_url(settings),
                          settings.collect_path / "demo", seconds, echo,
                          role=settings.collect_role))


def derive_today(echo: Echo) -> list[DayResult]:
    """Derive today's partitions (the pipelines' time zone) from what was collected."""
    today = dt.datetime.now(ZoneInfo(get_settings().pipeline_timezone)).date()
    results = derive_days(database_url(), today, today)
    for result in results:
        where = f" {result.site}" if result.site else ""
        echo(f"\nderived {today}{where}: "
             + ", ".join(f"{n} {asset}" for asset, n in result.rows.items())
             + ("" if not result.failed_checks else
                "; checks failed: " + ", ".join(result.failed_checks)))
    return results


def first_data(seconds: float, echo: Echo) -> list[DayResult]:
    """Everything the demo shows before it serves the dashboards: the samples, the sample
    shift, `seconds` of collected machine data and today's KPIs (none without data)."""
    load_samples(echo)
    shop_floor(echo)
    if seconds <= 0:
        return []
    echo("")
    collect(seconds, echo)
    return derive_today(echo)
