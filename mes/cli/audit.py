"""`mes audit`: seal, verify and anchor the audit log's hash chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mes.cli.common import fail, session, user_errors
from transactional.audit import head, read_anchor, seal, verify_chain

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("verify")
@user_errors
def audit_verify(
    anchor: Annotated[Path | None, typer.Option(
        help="an anchor written earlier by `mes audit anchor`: the chain must still hold "
             "its record unchanged", exists=True, dir_okay=False)] = None,
) -> None:
    """Check the audit log's hash chain: every record unchanged, none removed; with an
    anchor, not truncated or rewritten since."""
    anchored = read_anchor(anchor) if anchor is not None else None
    with session() as opened:
        seal(opened)
        report = verify_chain(opened, anchored)
    if not report.intact:
        problems = "\n".join(f"  - {problem}" for problem in report.broken)
        raise fail(f"{report.records} audit records, chain BROKEN:\n{problems}")
    against = f", matches the anchor of {anchored.taken_at}" if anchored else ""
    waiting = f" ({report.unsealed} committed since, not sealed yet)" if report.unsealed else ""
    typer.echo(f"{report.records} audit records, chain intact{against}{waiting}")


@app.command("anchor")
@user_errors
def audit_anchor(
    to: Annotated[Path, typer.Option(
        "--to", help="file to write the chain's head to; keep it outside the database "
                     "server (another machine, write-once storage)", dir_okay=False)],
) -> None:
    """Write the chain's head (record count and last hash) to a file, so a later
    `mes audit verify --anchor FILE` detects a truncated or rewritten chain."""
    with session() as opened:
        seal(opened)
        with opened.begin():
            anchor = head(opened)
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_text(json.dumps(anchor.as_json(), indent=1) + "\n")
    typer.echo(f"{to}: {anchor.records} audit records, head {anchor.last_hash[:16]}...")
