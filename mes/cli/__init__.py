"""The `mes` command line: the root only assembles the commands of each domain.

Each command group lives in its own module (`mes.cli.db`, `mes.cli.lots`, ...), which
imports what it needs at the top; the root imports a module only when one of its commands
runs, so `mes lot status` never loads the OPC UA and Modbus libraries that `mes collect`
needs. `mes --help` lists every command from the one-line summaries below without
importing any of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command, get_group


@dataclass(frozen=True)
class Entry:
    """A top-level command: its name, where its Typer app lives, and its summary."""

    name: str
    target: str  # "module:attribute" of a typer.Typer
    summary: str
    group: bool = True  # a group of subcommands, or (False) the Typer's one command


COMMANDS: tuple[Entry, ...] = (
    Entry("db", "mes.cli.db:app", "The database: local cluster, migrations, retention."),
    Entry("login", "mes.cli.identity:login_app",
          "Log in at this terminal; the commands that act use the session.", group=False),
    Entry("logout", "mes.cli.identity:logout_app", "End the session at this terminal.",
          group=False),
    Entry("user", "mes.cli.identity:user_app",
          "People's accounts: passwords, PINs, roles, lock-outs."),
    Entry("plant", "mes.cli.plant:plant_app",
          "The plant model: equipment, signals, shifts, reasons."),
    Entry("products", "mes.cli.plant:products_app",
          "Products: routings, bills of materials, inspections, certifications, work "
          "instructions."),
    Entry("erp", "mes.cli.erp:app", "The exchange with ERP: orders in, actuals out."),
    Entry("maintenance", "mes.cli.maintenance:app",
          "The CMMS: maintenance windows in, work requests out, their status back."),
    Entry("dispatch", "mes.cli.work:dispatch_app",
          "What to run next on a line's machines, in order, and what waits and why.",
          group=False),
    Entry("order", "mes.cli.work:order_app",
          "Work orders: release, hold, resume, complete, close, cancel."),
    Entry("run", "mes.cli.work:run_app",
          "Operation runs: start, report quantities, correct, abort, complete, show."),
    Entry("inspect", "mes.cli.work:inspect_app",
          "Record a measured sample; out of spec, the lot goes on hold and an NCR opens.",
          group=False),
    Entry("ncr", "mes.cli.work:ncr_app",
          "Nonconformances: signed dispositions, their manifest, verification."),
    Entry("labor", "mes.cli.work:labor_app", "Signing on and off at machines."),
    Entry("doc", "mes.cli.work:doc_app",
          "Work instructions: revisions, release, what is served."),
    Entry("lot", "mes.cli.lots:lot_app",
          "Material lots: receive, split, merge, move, hold and release."),
    Entry("trace", "mes.cli.lots:trace_app",
          "A lot's whole genealogy, with the machine, operator, order and inspections of "
          "each run on the way (both directions unless one is asked for).", group=False),
    Entry("spc", "mes.cli.spc:app",
          "Control charts and capability for inspection characteristics and process values."),
    Entry("audit", "mes.cli.audit:app",
          "The audit log of changes to orders, runs, lots, quality records and documents: "
          "verify, anchor."),
    Entry("collect", "mes.cli.collect:collect_app",
          "Collect machine data (OPC UA, Modbus) into the hypertables."),
    Entry("site", "mes.cli.sites:site_app",
          "This site's forwarder: new rows and fact changes to its NATS JetStream stream."),
    Entry("central", "mes.cli.sites:central_app",
          "The central store: every site's stream into this database, each message once."),
    Entry("opcua", "mes.cli.opcua:app",
          "OPC UA tools: browse a server's variables and node ids, start a tag map."),
    Entry("simulate", "mes.cli.simulate:simulate_app",
          "Play the plant's machines over OPC UA, Modbus TCP and Sparkplug B until Ctrl+C.",
          group=False),
    Entry("demo", "mes.cli.demo:app",
          "Set up the database, load the sample plant and a morning's work, run the line "
          "simulator and both collectors, derive the KPIs and serve the dashboards: until "
          "Ctrl-C, or for --seconds.", group=False),
    Entry("derive", "mes.cli.pipelines:derive_app",
          "Derive machine time, downtime events, KPIs and count reconciliation for each "
          "day, in this process, with the Dagster definitions the UI shows.", group=False),
    Entry("kpi", "mes.cli.pipelines:kpi_app",
          "A machine's ISO 22400-2 KPIs per hour, shift or day, from the derived tables.",
          group=False),
    Entry("downtime", "mes.cli.pipelines:downtime_app",
          "Stops: list them, give one its reason (the KPIs follow)."),
    Entry("pipelines", "mes.cli.pipelines:pipelines_app",
          "The Dagster pipelines: the environment `dagster dev` needs."),
    Entry("dashboards", "mes.cli.dashboards:app",
          "Serve the dashboards: supervisor board, analysts' pages, operator station.",
          group=False),
    Entry("bench", "mes.cli.bench:app",
          "Benchmarks: each figure beside its baseline or target."),
)


def load(entry: Entry) -> Any:
    """The Click command of one entry, importing its module."""
    module_name, attribute = entry.target.split(":")
    typer_app = getattr(importlib.import_module(module_name), attribute)
    if not entry.group:
        command = get_command(typer_app)
        command.name = entry.name
        return command
    group = get_group(typer_app)
    group.name = entry.name
    group.help = entry.summary
    return group


class LazyGroup(TyperGroup):
    """A group whose commands are imported when they run, and listed from their summaries."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = next((entry for entry in COMMANDS if entry.name == cmd_name), None)
        if entry is None:
            return None
        if self._listing:
            return TyperCommand(name=entry.name, help=entry.summary)
        return load(entry)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(cls=LazyGroup, help="An open Manufacturing Execution System.",
                  no_args_is_help=True)


@app.callback()
def _root() -> None:
    """An open Manufacturing Execution System."""
