"""`mes audit`: check the audit log's hash chain."""

from __future__ import annotations

import typer

from mes.cli.common import fail, session, user_errors
from transactional.audit import verify_chain

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("verify")
@user_errors
def audit_verify() -> None:
    """Check the audit log's hash chain: every record unchanged, none removed."""
    with session() as opened:
        report = verify_chain(opened)
    if not report.intact:
        problems = "\n".join(f"  - {problem}" for problem in report.broken)
        raise fail(f"{report.records} audit records, chain BROKEN:\n{problems}")
    typer.echo(f"{report.records} audit records, chain intact")
