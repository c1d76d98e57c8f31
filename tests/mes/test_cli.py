"""The command line's shape: each command loads only what it needs, and every command
group is listed from a summary that matches the command itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.core import TyperGroup

from mes.cli import COMMANDS, Entry, load
from mes.cli.reference import REFERENCE, render

PROTOCOL_LIBRARIES = ("asyncua", "pymodbus")

# Runs a command in a fresh interpreter and prints the top-level packages it imported.
_PROBE = """
import json, sys
from typer.testing import CliRunner
from mes.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"exit": result.exit_code,
                  "modules": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def _imported(*commands: tuple[str, ...]) -> dict[tuple[str, ...], set[str]]:
    """The top-level packages each command line imported, each in a fresh interpreter
    (all at once)."""
    running = {args: subprocess.Popen([sys.executable, "-c", _PROBE, *args],
                                      stdout=subprocess.PIPE, text=True)
               for args in commands}
    imported: dict[tuple[str, ...], set[str]] = {}
    for args, process in running.items():
        out, _ = process.communicate(timeout=120)
        report = json.loads(out.strip().splitlines()[-1])
        assert process.returncode == 0 and report["exit"] == 0, (args, out)
        imported[args] = set(report["modules"])
    return imported


@pytest.mark.slow
def test_commands_that_do_not_collect_never_load_the_protocol_libraries() -> None:
    imported = _imported(("--help",), ("lot", "status", "--help"),
                         ("order", "release", "--help"), ("db", "status", "--help"),
                         ("trace", "--help"), ("erp", "import", "--help"),
                         ("collect", "--help"))
    collect = imported.pop(("collect", "--help"))
    for args, modules in imported.items():
        assert modules.isdisjoint(PROTOCOL_LIBRARIES), args
    # The checks above would pass for a probe that saw nothing.
    assert set(PROTOCOL_LIBRARIES) <= collect
    # The list of commands comes from their summaries, not from importing them.
    assert imported[("--help",)].isdisjoint({"sqlalchemy", "transactional", "ingest"})


@pytest.mark.parametrize("entry", [entry for entry in COMMANDS if not entry.group],
                         ids=lambda entry: entry.name)
def test_a_single_command_s_summary_is_its_own_first_paragraph(entry: Entry) -> None:
    command = load(entry)
    assert command.name == entry.name
    first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
    assert first_paragraph == entry.summary


@pytest.mark.parametrize("entry", [entry for entry in COMMANDS if entry.group],
                         ids=lambda entry: entry.name)
def test_a_group_keeps_its_subcommands_even_when_it_has_one(entry: Entry) -> None:
    group = load(entry)
    assert isinstance(group, TyperGroup) and group.name == entry.name
    assert group.commands


def test_the_command_reference_in_docs_is_current() -> None:
    assert REFERENCE.read_text() == render(), (
        "docs/cli.md is stale: run `python -m mes.cli.reference`")


def test_the_reference_names_every_subcommand() -> None:
    # A stale-file check alone would pass for a renderer that lost the subcommands.
    text = render()
    for heading in ("## `mes lot`", "### `mes lot status`", "### `mes collect status`",
                    "### `mes bench trace`", "## `mes trace`"):
        assert f"\n{heading}\n" in text
