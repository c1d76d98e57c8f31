"""The `mes` command line: database lifecycle, plant loading and the demo.

Commands own their transaction (services never commit). Errors a plant engineer can act
on are printed without a traceback and end with exit code 1.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import psycopg
import typer
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ingest.files import CollectError, CollectorFiles, TagMapError
from ingest.retention import (
    PolicyUnavailableError,
    drop_old_chunks,
    parse_age,
    schedule_retention,
)
from mes import migrate
from mes.db import database_url, engine, session_factory
from mes.launch import collect_status
from mes.localdb import LocalCluster, LocalDatabaseError
from mes.settings import get_settings
from transactional.errors import RuleViolation
from transactional.plant import LoadReport, load_plant
from transactional.plant_file import PlantFileError, read_plant_file

app = typer.Typer(help="An open Manufacturing Execution System.", no_args_is_help=True)
db_app = typer.Typer(help="The database: local cluster, migrations, retention.",
                     no_args_is_help=True)
plant_app = typer.Typer(help="The plant model: equipment, signals, shifts, reasons.",
                        no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(plant_app, name="plant")

P = ParamSpec("P")
R = TypeVar("R")


def _fail(message: str) -> typer.Exit:
    typer.secho(message, fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can act on into a message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (PlantFileError, LocalDatabaseError, migrate.MigrationError,
                PolicyUnavailableError, TagMapError, CollectError, RuleViolation) as error:
            raise _fail(str(error)) from None
        except IntegrityError as error:
            raise _fail(f"the database refused the change, nothing was written: "
                        f"{error.orig}") from None
        except OperationalError as error:
            raise _fail(f"cannot reach the database: {error.orig}") from None
        except DBAPIError as error:
            raise _fail(f"the database refused, nothing was written: {error.orig}") from None
        except psycopg.OperationalError as error:
            raise _fail(f"cannot reach the database: {error}") from None

    return wrapper


def _hidden(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _password_hint() -> str:
    settings = get_settings()
    if settings.database_url is not None:
        return ""
    return (f"   (the password is in "
            f"{LocalCluster.from_settings(settings).password_file()})")


def _bring_up() -> str:
    """Start the local cluster (unless MES_DATABASE_URL names a server) and migrate."""
    settings = get_settings()
    if settings.database_url is None:
        cluster = LocalCluster.from_settings(settings)
        typer.echo(f"starting the local PostgreSQL + TimescaleDB cluster in {cluster.home}")
        cluster.up()
    url = database_url(settings)
    info = migrate.upgrade(url)
    typer.echo(f"TimescaleDB {info.version}, {info.edition} edition"
               + ("" if info.community else
                  " (no compression or retention policies; `mes db retention` drops chunks)"))
    return url


@db_app.command("up")
@user_errors
def db_up() -> None:
    """Provision and start the local database (or use MES_DATABASE_URL), then migrate it."""
    url = _bring_up()
    typer.echo(f"database ready: {_hidden(url)}")


@db_app.command("down")
@user_errors
def db_down() -> None:
    """Stop the local database cluster."""
    settings = get_settings()
    if settings.database_url:
        typer.echo("MES_DATABASE_URL names an external server: nothing to stop here")
        return
    stopped = LocalCluster.from_settings(settings).down()
    typer.echo("local database stopped" if stopped else "local database was not running")


@db_app.command("migrate")
@user_errors
def db_migrate(revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Apply the migrations in sql/ up to REVISION (default: the newest)."""
    info = migrate.upgrade(database_url(), revision)
    typer.echo(f"migrated to {revision} (TimescaleDB {info.version}, {info.edition} edition)")


@db_app.command("downgrade")
@user_errors
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="target revision, or 'base'")],
) -> None:
    """Undo migrations down to REVISION ('base' removes the whole schema)."""
    migrate.downgrade(database_url(), revision)
    typer.echo(f"downgraded to {revision}")


@db_app.command("status")
@user_errors
def db_status() -> None:
    """Where the database is, what runs there, and what it holds."""
    settings = get_settings()
    if settings.database_url is None:
        cluster = LocalCluster.from_settings(settings)
        running = cluster.is_running()
        typer.echo(f"local cluster: {cluster.home} port {cluster.port}: "
                   f"{'running' if running else 'stopped'}")
        if not running:
            raise typer.Exit(code=1)
    url = database_url(settings)
    typer.echo(f"url: {_hidden(url)}")
    with engine(url).connect() as conn:
        info = migrate.timescale_info(conn)
        typer.echo(f"TimescaleDB {info.version}, {info.edition} edition")
        revision = migrate.current_revision(conn)
        typer.echo(f"schema revision: {revision or 'none (run mes db up)'}")
        if revision is None:
            return
        for level, count in conn.execute(text(
                "SELECT level, count(*) FROM mes.equipment GROUP BY level ORDER BY level")):
            typer.echo(f"  {level}: {count}")
        signals = conn.execute(text("SELECT count(*) FROM mes.signal")).scalar_one()
        typer.echo(f"  signals: {signals}")
        for name, chunks, size in conn.execute(text(
                "SELECT format('%I.%I', hypertable_schema, hypertable_name), num_chunks, "
                "pg_size_pretty(hypertable_size(format('%I.%I', hypertable_schema, "
                "hypertable_name)::regclass)) FROM timescaledb_information.hypertables "
                "ORDER BY 1")):
            typer.echo(f"  hypertable {name}: {chunks} chunks, {size}")


@db_app.command("retention")
@user_errors
def db_retention(
    older_than: Annotated[str, typer.Option("--older-than", help="age such as 90d, 36h, 2w")],
    dry_run: Annotated[bool, typer.Option(help="list the chunks, drop nothing")] = False,
    policy: Annotated[bool, typer.Option(
        help="schedule it as a TimescaleDB retention policy (community edition only)")] = False,
) -> None:
    """Drop raw time-series chunks entirely older than the given age."""
    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise _fail(f"--older-than: {error}") from None
    if policy:
        with engine(database_url()).begin() as conn:
            edition = migrate.timescale_info(conn).edition
            scheduled = schedule_retention(conn, age, edition=edition)
        typer.echo(f"retention policy set to {older_than} on {', '.join(scheduled)}")
        return
    with engine(database_url()).begin() as conn:
        results = drop_old_chunks(conn, age, dry_run=dry_run)
    verb = "would drop" if dry_run else "dropped"
    for result in results:
        typer.echo(f"{result.hypertable}: {verb} {len(result.chunks)} chunks")
        for chunk in result.chunks:
            typer.echo(f"  {chunk}")


def _load(path: Path) -> LoadReport:
    plant = read_plant_file(path)
    with session_factory(database_url())() as session, session.begin():
        return load_plant(session, plant, source=str(path))


@plant_app.command("load")
@user_errors
def plant_load(path: Annotated[Path, typer.Argument(help="plant file, .toml or .yaml")]) -> None:
    """Load a plant definition (all or nothing; loading it again changes nothing)."""
    report = _load(path)
    typer.echo(f"{path}: " + ("loaded" if report.changed else "already up to date"))
    typer.echo(report.summary())


products_app = typer.Typer(help="Products: routings, bills of materials, inspections, "
                                "certifications, work instructions.", no_args_is_help=True)
app.add_typer(products_app, name="products")


@products_app.command("load")
@user_errors
def products_load(
    path: Annotated[Path, typer.Argument(help="products file, .toml")],
    by: Annotated[str, typer.Option(
        help="who loads it, as the audit log names them")] = "products-file",
) -> None:
    """Load product definitions (all or nothing; loading them again changes nothing)."""
    from transactional.products import load_products, read_products_file

    products = read_products_file(path)
    with session_factory(database_url())() as session, session.begin():
        report = load_products(session, products, source=str(path), actor=by)
    typer.echo(f"{path}: " + ("loaded" if report.changed else "already up to date"))
    typer.echo(report.summary())


erp_app = typer.Typer(help="The exchange with ERP: orders in.", no_args_is_help=True)
app.add_typer(erp_app, name="erp")


@erp_app.command("import")
@user_errors
def erp_import(
    path: Annotated[Path, typer.Argument(
        help="orders: .xml (B2MML OperationsSchedule), .csv or .json")],
) -> None:
    """Import production orders from ERP (all or nothing; the same file again changes
    nothing; orders already started are not changed)."""
    from transactional.erp_import import import_orders

    with session_factory(database_url())() as session, session.begin():
        report = import_orders(session, path)
    typer.echo(f"{path}: {report.summary()}")
    for label, codes in (("created", report.created), ("updated", report.updated)):
        if codes:
            typer.echo(f"  {label}: {', '.join(codes)}")


collect_app = typer.Typer(help="Collect machine data (OPC UA, Modbus) into the hypertables.")
app.add_typer(collect_app, name="collect")


def _collector_files(directory: Path | None) -> CollectorFiles:
    return CollectorFiles(directory or get_settings().collect_path)


@collect_app.callback(invoke_without_command=True)
@user_errors
def collect(
    ctx: typer.Context,
    tag_map: Annotated[Path | None, typer.Option(
        "--tag-map", help="tag map (TOML): where each signal lives on the PLCs")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="spool, counter baselines and status file (default: MES_COLLECT_DIR "
                      "or .mes/collect)")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="read every node and register once, print what came back, store "
                        "nothing; exit 1 if any failed")] = False,
) -> None:
    """Run the collectors of a tag map until SIGTERM or Ctrl-C; `mes collect status` shows
    how they are doing."""
    if ctx.invoked_subcommand is not None:
        return
    if tag_map is None:
        raise _fail("give the tag map: mes collect --tag-map FILE")
    from ingest.collect import check_tag_map_file, run_until_signalled

    settings = get_settings()
    files = _collector_files(directory)
    if check:
        table, all_good = check_tag_map_file(tag_map, database_url(settings), files,
                                             settings.collect_role)
        typer.echo(table)
        if not all_good:
            raise typer.Exit(code=1)
        return
    asyncio.run(run_until_signalled(
        tag_map, database_url(settings), files, spool_max_bytes=settings.spool_max_bytes,
        flush_rows=settings.flush_rows, flush_seconds=settings.flush_interval_ms / 1000,
        role=settings.collect_role))


# Defined beside the console script, which answers it without importing this module.
collect_app.command("status")(collect_status)


opcua_app = typer.Typer(help="OPC UA tools: what a server offers.", no_args_is_help=True)
app.add_typer(opcua_app, name="opcua")


@opcua_app.command("browse")
def opcua_browse(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://host:port[/path]")],
    depth: Annotated[int, typer.Option(min=1, max=20,
                                       help="levels below the Objects folder")] = 4,
    stub: Annotated[bool, typer.Option(
        "--tag-map-stub", help="print a starting tag map instead of the table")] = False,
    name: Annotated[str, typer.Option(help="the source's name in the stub")] = "plc",
) -> None:
    """List the server's variables: node id (with the namespace index it uses), browse
    path, data type and current value."""
    import logging

    from asyncua.ua.uaerrors import UaError

    from ingest.browse import browse, render_table, tag_map_stub

    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    try:
        variables = asyncio.run(browse(endpoint, depth))
    except (OSError, TimeoutError, UaError) as error:
        raise _fail(f"cannot browse {endpoint}: {error or type(error).__name__}") from None
    typer.echo(tag_map_stub(endpoint, variables, name) if stub else render_table(variables))


audit_app = typer.Typer(help="The audit log of changes to orders, runs, lots, quality "
                                 "records and documents.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@user_errors
def audit_verify() -> None:
    """Check the audit log's hash chain: every record unchanged, none removed."""
    from transactional.audit import verify_chain

    with session_factory(database_url(get_settings()))() as session:
        report = verify_chain(session)
    if not report.intact:
        problems = "\n".join(f"  - {problem}" for problem in report.broken)
        raise _fail(f"{report.records} audit records, chain BROKEN:\n{problems}")
    typer.echo(f"{report.records} audit records, chain intact")


maintenance_app = typer.Typer(help="Maintenance windows from the CMMS; dispatching honours "
                                   "them.", no_args_is_help=True)
app.add_typer(maintenance_app, name="maintenance")


@maintenance_app.command("import")
@user_errors
def maintenance_import(
    path: Annotated[Path, typer.Argument(
        help="CMMS export, .json (a list) or .csv, with id, machine, starts_at, ends_at, "
             "reason")],
) -> None:
    """Import maintenance windows (all or nothing; the same file again changes nothing)."""
    from transactional.maintenance import import_window_file

    with session_factory(database_url())() as session, session.begin():
        report = import_window_file(session, path)
    typer.echo(f"{path}: " + ("imported" if report.changed else "already up to date")
               + f"; {report.summary()}")


@maintenance_app.command("list")
@user_errors
def maintenance_list(
    machine: Annotated[str | None, typer.Option(help="only this machine's windows")] = None,
    all_windows: Annotated[bool, typer.Option(
        "--all", help="past windows too (default: only those not over yet)")] = False,
) -> None:
    """Maintenance windows by start time."""
    import datetime as dt

    from transactional.maintenance import list_windows

    with session_factory(database_url())() as session:
        windows = list_windows(session, machine=machine,
                               ending_after=None if all_windows else dt.datetime.now(dt.UTC))
    for window in windows:
        typer.echo(f"{window.external_id:<16} {window.machine:<10} "
                   f"{window.starts_at.isoformat()} - {window.ends_at.isoformat()}  "
                   f"{window.reason or ''}".rstrip())
    if not windows:
        typer.echo("no maintenance windows")


@app.command("dispatch")
@user_errors
def dispatch(
    work_center: Annotated[str, typer.Option("--work-center", help="line code, e.g. L1")],
    at: Annotated[str | None, typer.Option(
        help="plan from this time, ISO 8601 with a time zone (default: now)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the list as JSON")] = False,
) -> None:
    """What to run next on a line's machines, in order, and what waits and why."""
    import datetime as dt

    from transactional.dispatch import dispatch_list, render

    start: dt.datetime | None = None
    if at is not None:
        try:
            start = dt.datetime.fromisoformat(at)
        except ValueError:
            raise _fail(f"--at: {at!r} is not an ISO 8601 time like "
                        "2026-12-01T06:00+01:00") from None
        if start.tzinfo is None:
            raise _fail(f"--at: {at!r} has no time zone; add one, e.g. +01:00 or Z")
    with session_factory(database_url())() as session:
        plan = dispatch_list(session, work_center, start)
    typer.echo(json.dumps(plan.as_json(), indent=1) if as_json else render(plan))


# --- Executing work: orders, runs, inspections, nonconformances, labor, instructions ------

order_app = typer.Typer(help="Work orders: release, hold, resume, complete, close, cancel.",
                        no_args_is_help=True)
run_app = typer.Typer(help="Operation runs: start, report quantities, complete, show.",
                      no_args_is_help=True)
ncr_app = typer.Typer(help="Nonconformances: signed dispositions.", no_args_is_help=True)
labor_app = typer.Typer(help="Signing on and off at machines.", no_args_is_help=True)
doc_app = typer.Typer(help="Work instructions: revisions, release, what is served.",
                      no_args_is_help=True)
app.add_typer(order_app, name="order")
app.add_typer(run_app, name="run")
app.add_typer(ncr_app, name="ncr")
app.add_typer(labor_app, name="labor")
app.add_typer(doc_app, name="doc")
By = Annotated[str, typer.Option(
    "--by", metavar="BADGE", help="badge of the person acting (the audit log names them)")]
ORDER_COMMANDS = {"release": "released", "hold": "on_hold", "resume": "in_progress",
                  "complete": "completed", "close": "closed", "cancel": "cancelled"}


@contextmanager
def _acting(by: str) -> Iterator[Session]:
    """One command, one transaction, with the acting person named for the audit log."""
    from transactional.audit import acting
    from transactional.labor import person_by_badge

    with session_factory(database_url())() as session, session.begin():
        person_by_badge(session, by)
        acting(session, by)
        yield session


def _order_command(verb: str, to_status: str) -> None:
    @order_app.command(verb, help=f"Move a work order to {to_status.replace('_', ' ')}.")
    @user_errors
    def command(
        code: Annotated[str, typer.Argument(help="the order's code")],
        by: By,
        expected_version: Annotated[int | None, typer.Option(
            help="refuse if the order changed since you saw this version")] = None,
    ) -> None:
        from transactional.orders import transition

        with _acting(by) as session:
            order = transition(session, code, to_status, expected_version)
            typer.echo(f"order {code}: {order.status} (version {order.version})")


for _verb, _status in ORDER_COMMANDS.items():
    _order_command(_verb, _status)


@run_app.command("start")
@user_errors
def run_start(
    order: Annotated[str, typer.Argument(help="work order code")],
    operation: Annotated[str, typer.Argument(help="operation code of the order's routing")],
    machine: Annotated[str, typer.Argument(help="machine code")],
    by: Annotated[str, typer.Option("--by", metavar="BADGE", help="the operator's badge")],
) -> None:
    """Start an operation of an order on a machine; shows the work instruction to follow."""
    from transactional.models import DocumentRevision
    from transactional.orders import start_run

    with _acting(by) as session:
        run = start_run(session, order, operation, machine, by)
        typer.echo(f"run {run.id} started: operation {operation} of order {order} on "
                   f"{machine}, operator {by}, {run.planned_quantity:g} planned")
        if run.document_revision_id is not None:
            served = session.get_one(DocumentRevision, run.document_revision_id)
            typer.echo(f"work instruction, revision {served.revision}:\n{served.content}")


@run_app.command("report")
@user_errors
def run_report(
    run: Annotated[int, typer.Argument(help="the run's number")],
    by: By,
    good: Annotated[float, typer.Option(min=0, help="good units made")] = 0,
    scrap: Annotated[float, typer.Option(min=0, help="units scrapped")] = 0,
) -> None:
    """Add good and scrap quantities to a running run."""
    from transactional.orders import report

    with _acting(by) as session:
        reported = report(session, run, good, scrap)
        typer.echo(f"run {run}: {reported.good_quantity:g} good, "
                   f"{reported.scrap_quantity:g} scrap of {reported.planned_quantity:g} planned")


def _echo_actuals(session: Session, run: int) -> None:
    from transactional.labor import labor_hours
    from transactional.orders import run_performance

    actual = run_performance(session, run)
    hours = labor_hours(session, run)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f} %"

    cycle = actual.actual_cycle_seconds
    typer.echo(f"run {run} ({actual.status}): {actual.good_quantity:g} good, "
               f"{actual.scrap_quantity:g} scrap of {actual.planned_quantity:g} planned "
               f"({pct(actual.quantity_deviation_pct)})")
    typer.echo(f"  cycle time {'-' if cycle is None else f'{cycle:.2f} s'} per good unit, "
               f"standard {actual.standard_cycle_seconds:g} s "
               f"({pct(actual.cycle_deviation_pct)})")
    typer.echo(f"  labor {hours.actual_hours:.2f} h by {hours.people} people, standard "
               f"{hours.standard_hours:.2f} h")


@run_app.command("consume")
@user_errors
def run_consume(
    run: Annotated[int, typer.Argument(help="the run's number")],
    lot: Annotated[str, typer.Argument(help="the lot the material comes from")],
    quantity: Annotated[float, typer.Argument(help="how much, in the material's unit")],
    by: By,
) -> None:
    """Take material from an available lot into a running run (only a material the
    operation's bill of materials asks for)."""
    from transactional.lots import consume, person_by_badge

    with _acting(by) as session:
        taken = consume(session, lot, quantity, run, person_by_badge(session, by).id)
        typer.echo(f"run {run}: {quantity:g} taken from lot {lot}, {taken.quantity:g} left "
                   f"({taken.status})")


@run_app.command("complete")
@user_errors
def run_complete(
    run: Annotated[int, typer.Argument(help="the run's number")],
    by: By,
    lot: Annotated[str | None, typer.Option(help="make the good quantity into this new lot")]
    = None,
    location: Annotated[str | None, typer.Option(help="where the new lot goes")] = None,
) -> None:
    """Complete a run (refused until its inspections have their samples)."""
    from transactional.orders import complete_run

    with _acting(by) as session:
        complete_run(session, run, by, lot, location)
        _echo_actuals(session, run)
        if lot is not None:
            typer.echo(f"  output lot {lot}")


@run_app.command("show")
@user_errors
def run_show(run: Annotated[int, typer.Argument(help="the run's number")]) -> None:
    """A run's quantities, cycle time and labor against plan and standard."""
    with session_factory(database_url())() as session:
        _echo_actuals(session, run)


@app.command("inspect")
@user_errors
def inspect_sample(
    run: Annotated[int, typer.Argument(help="the run's number")],
    characteristic: Annotated[str, typer.Argument(help="as the inspection plan names it")],
    sample: Annotated[int, typer.Argument(help="sample number, from 1")],
    value: Annotated[float, typer.Argument(help="the measured value")],
    by: By,
    lot: Annotated[str | None, typer.Option(help="the lot the sample was taken from")] = None,
) -> None:
    """Record a measured sample; out of spec, the lot goes on hold and an NCR opens."""
    from transactional.quality import describe_nonconformance, record_inspection

    with _acting(by) as session:
        outcome = record_inspection(session, run, characteristic, sample, value, by, lot)
        if outcome.result.within_spec:
            typer.echo(f"run {run}: '{characteristic}' sample {sample} = {value:g}, within spec")
        for ncr in outcome.nonconformances:
            typer.echo(f"OUT OF SPEC: {describe_nonconformance(session, ncr)}")


@ncr_app.command("disposition")
@user_errors
def ncr_disposition(
    code: Annotated[str, typer.Argument(help="the nonconformance, e.g. NCR-000012")],
    decision: Annotated[str, typer.Argument(help="use_as_is, rework or scrap")],
    by: By,
    meaning: Annotated[str, typer.Option(help="what your signature means, in words")],
    comment: Annotated[str | None, typer.Option(help="why")] = None,
) -> None:
    """Decide a nonconformance (quality personnel only), signed electronically."""
    from transactional.quality import disposition

    with _acting(by) as session:
        decided = disposition(session, code, decision.replace("-", "_"), by, meaning, comment)
        typer.echo(f"{code}: {decided.decision}, signed by {by} ('{meaning}', signature "
                   f"{decided.signature_id})")


@ncr_app.command("verify")
@user_errors
def ncr_verify(code: Annotated[str, typer.Argument(help="the nonconformance")]) -> None:
    """Check that a dispositioned nonconformance is unchanged since it was signed."""
    from transactional.quality import signature_of, verify_signature

    with session_factory(database_url())() as session:
        check = verify_signature(session, signature_of(session, code))
    if not check.intact:
        raise _fail(check.detail)
    typer.echo(check.detail)


@labor_app.command("on")
@user_errors
def labor_on(
    badge: Annotated[str, typer.Argument(help="who signs on")],
    machine: Annotated[str, typer.Argument(help="at which machine")],
    by: Annotated[str | None, typer.Option(
        "--by", metavar="BADGE", help="who does it, if not the person themselves")] = None,
) -> None:
    """Sign a person on at a machine."""
    from transactional.labor import sign_on

    with _acting(by or badge) as session:
        sign_on(session, badge, machine)
        typer.echo(f"{badge} signed on at {machine}")


@labor_app.command("off")
@user_errors
def labor_off(
    badge: Annotated[str, typer.Argument(help="who signs off")],
    by: Annotated[str | None, typer.Option(
        "--by", metavar="BADGE", help="who does it, if not the person themselves")] = None,
) -> None:
    """Sign a person off wherever they are signed on."""
    from transactional.labor import sign_off

    with _acting(by or badge) as session:
        closed = sign_off(session, badge)
        assert closed.signed_off_at is not None
        hours = (closed.signed_off_at - closed.signed_on_at).total_seconds() / 3600
        typer.echo(f"{badge} signed off after {hours:.2f} h")


@doc_app.command("add")
@user_errors
def doc_add(
    code: Annotated[str, typer.Argument(help="the document's code, e.g. WI-PRESS")],
    content: Annotated[Path, typer.Argument(
        help="file with the revision's text", exists=True, dir_okay=False)],
    by: By,
    title: Annotated[str | None, typer.Option(help="for a new document")] = None,
) -> None:
    """Add a draft revision of a work instruction."""
    from transactional.documents import add_revision

    with _acting(by) as session:
        revision = add_revision(session, code, content.read_text(), title)
        typer.echo(f"{code} revision {revision.revision}: draft")


@doc_app.command("release")
@user_errors
def doc_release(
    code: Annotated[str, typer.Argument(help="the document's code")],
    revision: Annotated[int, typer.Argument(help="the draft revision to release")],
    by: By,
) -> None:
    """Release a draft revision; the one released before is superseded."""
    from transactional.documents import release

    with _acting(by) as session:
        release(session, code, revision, by)
        typer.echo(f"{code} revision {revision}: released")


@doc_app.command("show")
@user_errors
def doc_show(code: Annotated[str, typer.Argument(help="the document's code")]) -> None:
    """The revision operators are served now."""
    from transactional.documents import served_revision

    with session_factory(database_url())() as session:
        served = served_revision(session, code)
        typer.echo(f"{code} revision {served.revision}:\n{served.content}")


def sample_plant() -> Path:
    return Path(str(resources.files("mes") / "samples" / "plant.toml"))


def _demo_orders() -> None:
    """The sample products, three orders from an ERP file (B2MML) and a CMMS's maintenance
    windows, each all or nothing and idempotent like their commands."""
    from transactional.erp_import import import_orders
    from transactional.maintenance import import_window_file
    from transactional.products import load_products, read_products_file

    samples = sample_plant().parent
    products = read_products_file(samples / "products.toml")
    with session_factory(database_url())() as session, session.begin():
        loaded = load_products(session, products, source="sample products")
        orders = import_orders(session, samples / "orders.xml")
        windows = import_window_file(session, samples / "maintenance.json")
    typer.echo("sample products: " + ("loaded" if loaded.changed else "already loaded"))
    typer.echo(f"sample ERP orders (B2MML) {samples / 'orders.xml'}: {orders.summary()}")
    typer.echo(f"sample maintenance windows: {windows.summary()}")


@app.command("demo")
@user_errors
def demo(
    seconds: Annotated[float, typer.Option(
        min=0, help="how long the simulator and the collectors run (0: not at all)")] = 10,
) -> None:
    """Set up the database, load the sample plant, run the line simulator and both
    collectors for a few seconds, and show what arrived."""
    from mes.demo import live_demo

    url = _bring_up()
    path = sample_plant()
    report = _load(path)
    typer.echo(f"sample plant {path}: " + ("loaded" if report.changed else "already loaded"))
    _demo_orders()
    db_status()
    if seconds > 0:
        typer.echo("")
        asyncio.run(live_demo(read_plant_file(path), database_url(get_settings()),
                              get_settings().collect_path / "demo", seconds, typer.echo,
                              role=get_settings().collect_role))
    typer.echo(
        "\nWhere to look next:\n"
        f"  psql '{_hidden(url)}'{_password_hint()}\n"
        "  tables: mes.equipment, mes.signal, mes.shift, mes.downtime_reason; hypertables in ts\n"
        "  .venv/bin/mes simulate --tag-map-out tags.toml   (serves the plant until Ctrl-C)\n"
        "  .venv/bin/mes collect --tag-map tags.toml        (collects it; "
        "`mes collect status` shows how)\n"
        "  .venv/bin/mes order release 4711 --by 3001 && .venv/bin/mes dispatch "
        "--work-center L1\n"
        "  .venv/bin/mes audit verify | .venv/bin/mes trace LOT\n"
        "  .venv/bin/mes db status | .venv/bin/mes db retention --older-than 90d --dry-run\n"
        "  .venv/bin/mes db down   (stops the local database)"
    )


@app.command("simulate")
@user_errors
def simulate(
    plant: Annotated[Path | None, typer.Option(
        help="plant file, .toml or .yaml (default: the sample plant)")] = None,
    opcua_port: Annotated[int, typer.Option(help="OPC UA port; 0 picks a free one")] = 4840,
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port; 0 picks a free one")] = 5020,
    seed: Annotated[int, typer.Option(help="the same seed plays the same day")] = 0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    word_order: Annotated[str, typer.Option(
        metavar="big|little", help="Modbus 32-bit values: high word first (big) or last")] = "big",
    counter_start: Annotated[int, typer.Option(
        help="part counters start here (near 4294967295 shows a rollover)")] = 0,
    tag_map_out: Annotated[Path | None, typer.Option(
        help="write the collector tag map for this simulator to this file")] = None,
    tag_map_protocol: Annotated[str, typer.Option(
        metavar="opcua|modbus|both", help="which protocol the tag map reads")] = "opcua",
) -> None:
    """Play the plant's machines over OPC UA and Modbus TCP until Ctrl+C."""
    from ingest.simulator.cli import simulate as run_simulator

    try:
        run_simulator(plant or sample_plant(), opcua_port, modbus_port, seed, speed, word_order,
                      counter_start, tag_map_out, tag_map_protocol)
    except (ValueError, OSError) as error:
        raise _fail(str(error)) from None


lot_app = typer.Typer(help="Material lots: receive, split, merge, move, hold and release.",
                      no_args_is_help=True)
app.add_typer(lot_app, name="lot")
ActingBadge = Annotated[str, typer.Option(
    "--by", metavar="BADGE", help="badge of the person acting (for the audit log)")]


def _split_parts(parts: list[str]) -> list[tuple[str, float]]:
    parsed: list[tuple[str, float]] = []
    for part in parts:
        code, equals, quantity = part.partition("=")
        try:
            parsed.append((code.strip(), float(quantity)))
        except ValueError:
            equals = ""
        if not equals or not code.strip():
            raise typer.BadParameter(f"{part!r}: write each new lot as CODE=QUANTITY",
                                     param_hint="--into")
    return parsed


@lot_app.command("location")
@user_errors
def lot_location(
    code: Annotated[str, typer.Argument(help="the storage location's code")],
    name: Annotated[str, typer.Option(help="what people call it")] = "",
) -> None:
    """Add a storage location (a rack, a line-side buffer, the quarantine cage)."""
    from transactional.lots import add_location

    with session_factory(database_url())() as session, session.begin():
        add_location(session, code, name)
    typer.echo(f"storage location {code} added")


@lot_app.command("receive")
@user_errors
def lot_receive(
    code: Annotated[str, typer.Argument(help="the new lot's code")],
    material: Annotated[str, typer.Option(help="material code, e.g. STEEL-COIL")],
    quantity: Annotated[float, typer.Option(help="in the material's unit")],
    location: Annotated[str, typer.Option(help="storage location code")],
    by: ActingBadge,
) -> None:
    """Receive a lot of material into a storage location."""
    from transactional.lots import act_as, describe, receive

    with session_factory(database_url())() as session, session.begin():
        lot = receive(session, code, material, quantity, location, act_as(session, by))
        typer.echo(f"received {describe(session, lot)}")


@lot_app.command("split")
@user_errors
def lot_split(
    code: Annotated[str, typer.Argument(help="the lot to split")],
    into: Annotated[list[str], typer.Option(
        metavar="CODE=QUANTITY", help="a new lot and its quantity; repeat for each")],
    by: ActingBadge,
) -> None:
    """Split quantities off a lot into new lots (same place, same status)."""
    from transactional.lots import act_as, describe, split

    parts = _split_parts(into)
    with session_factory(database_url())() as session, session.begin():
        children = split(session, code, parts, act_as(session, by))
        for lot in children:
            typer.echo(f"new {describe(session, lot)}")
        typer.echo(f"left {describe(session, code)}")


@lot_app.command("merge")
@user_errors
def lot_merge(
    codes: Annotated[list[str], typer.Argument(help="the lots to merge, whole")],
    into: Annotated[str, typer.Option(help="the new lot's code")],
    by: ActingBadge,
) -> None:
    """Merge whole lots of one material, status and location into a new lot."""
    from transactional.lots import act_as, describe, merge

    with session_factory(database_url())() as session, session.begin():
        lot = merge(session, codes, into, act_as(session, by))
        typer.echo(f"merged {', '.join(codes)} into {describe(session, lot)}")


@lot_app.command("move")
@user_errors
def lot_move(
    code: Annotated[str, typer.Argument(help="the lot to move")],
    location: Annotated[str, typer.Argument(help="where it goes")],
    by: ActingBadge,
) -> None:
    """Move a whole lot to another storage location."""
    from transactional.lots import act_as, describe, move

    with session_factory(database_url())() as session, session.begin():
        lot = move(session, code, location, act_as(session, by))
        typer.echo(f"moved {describe(session, lot)}")


@lot_app.command("status")
@user_errors
def lot_status(
    code: Annotated[str, typer.Argument(help="the lot")],
    status: Annotated[str, typer.Argument(
        help="available, on_hold, quarantined or scrapped")],
    by: ActingBadge,
) -> None:
    """Hold, quarantine, release or scrap a lot."""
    from transactional.lots import act_as, describe, set_status

    with session_factory(database_url())() as session, session.begin():
        lot = set_status(session, code, status, act_as(session, by))
        typer.echo(describe(session, lot))


@app.command("trace")
@user_errors
def trace_lot(
    lot: Annotated[str, typer.Argument(help="the lot's code")],
    forward: Annotated[bool, typer.Option(
        "--forward", help="only where it went: the lots made from it (a recall)")] = False,
    backward: Annotated[bool, typer.Option(
        "--backward", help="only where it came from: its ingredients")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> None:
    """A lot's whole genealogy, with the machine, operator, order and inspections of each
    run on the way (both directions unless one is asked for)."""
    from transactional.genealogy import DIRECTIONS, Direction, render, trace

    directions: tuple[Direction, ...] = DIRECTIONS
    if forward != backward:
        directions = ("forward",) if forward else ("backward",)
    with session_factory(database_url())() as session:
        found = trace(session, lot, directions)
    typer.echo(json.dumps(found.to_json(), indent=1) if as_json else render(found))


bench_app = typer.Typer(help="Benchmarks: each figure beside its baseline or target.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("ingest")
@user_errors
def bench_ingest(
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
    rows: Annotated[int | None, typer.Option(
        min=1000, help="samples through the writer, a multiple of 1000 (default 3,000,000)",
    )] = None,
    rounds: Annotated[int | None, typer.Option(
        min=1, help="alternating writer / server COPY rounds; the best of each is compared "
             "(default 5)",
    )] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="small sizes: checks that every measurement runs")] = False,
) -> None:
    """Measure the ingest path: writer throughput, latency, capacity, storage, deadband.

    Everything runs in a scratch database on the local cluster, dropped afterwards."""
    from ingest.bench import BenchError, render, run_ingest_bench, sizes_for

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    try:
        results = run_ingest_bench(sizes_for(quick, rows, rounds), progress)
    except BenchError as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(results) if as_json else render(results))


@bench_app.command("trace")
@user_errors
def bench_trace(
    lots: Annotated[int, typer.Option(
        "--lots", min=2000, help="lots in the synthetic genealogy")] = 1_000_000,
    traces: Annotated[int, typer.Option(
        min=10, help="traces timed in each direction")] = 500,
    seed: Annotated[int, typer.Option(help="the same seed builds the same genealogy")] = 0,
    as_json: Annotated[bool, typer.Option(
        "--json", help="all figures as one JSON object on stdout")] = False,
) -> None:
    """Time six-level genealogy traces over a synthetic plant history of LOTS lots.

    Builds it in a scratch database on the local cluster (bulk COPY, audit triggers off for
    the load only), times traces backward from finished lots and forward from raw lots, and
    drops the database."""
    from transactional.bench import TraceBenchError, render_trace_bench, run_trace_bench

    def progress(message: str) -> None:
        typer.echo(message, err=True)

    try:
        results = run_trace_bench(lots, traces, seed, progress)
    except TraceBenchError as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps(results) if as_json else render_trace_bench(results))


if __name__ == "__main__":
    app()
