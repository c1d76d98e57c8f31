"""`mes login`, `mes logout` and `mes user`: who is acting at this terminal, and
administering people's passwords.

Logging in keeps a session token in a file only this user can read (`MES_SESSION_FILE`);
the commands that act use it until it times out. Setting passwords is administration: it
runs with the owner's rights, as the logged-in administrator (or `mes-admin` when nobody is
logged in, the owner's credentials being the authority).
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from mes import login
from mes.cli.common import (
    PasswordStdin,
    administration,
    fail,
    read_password,
    session,
    transaction,
    user_errors,
)
from transactional import identity
from transactional.errors import NotPermitted
from transactional.models import AuthEvent, Credential
from transactional.permissions import Action, require, roles_of

login_app = typer.Typer(add_completion=False)
logout_app = typer.Typer(add_completion=False)
user_app = typer.Typer(no_args_is_help=True, add_completion=False)


@login_app.command("login")
@user_errors
def log_in(
    badge: Annotated[str, typer.Argument(help="your badge")],
    pin: Annotated[bool, typer.Option(
        "--pin", help="with your PIN: shop-floor actions only (no releases, signatures or "
                      "administration)")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Log in at this terminal; the commands that act use the session.

    It ends after the configured idle minutes without a command, or at `mes logout`."""
    method = "pin" if pin else "password"
    secret = read_password(f"{method} of {badge}", password_stdin)
    policy = login.policy()
    try:
        with transaction() as opened:
            token = identity.log_in(opened, badge, secret, method=method, policy=policy)
            person = identity.person_for(opened, badge)
            roles = sorted(roles_of(opened, person))
    except NotPermitted:
        login.forget()
        raise
    path = login.save(badge, token)
    typer.echo(f"logged in as {person.name} ({badge}), roles: {', '.join(roles) or 'none'}; "
               f"the session ends after {policy.idle_timeout.total_seconds() / 60:g} idle "
               f"minutes (token in {path})")


@logout_app.command("logout")
@user_errors
def log_out() -> None:
    """End the session at this terminal."""
    saved = login.saved()
    if saved is None:
        typer.echo("nobody is logged in here")
        return
    with transaction() as opened:
        person = identity.log_out(opened, saved.token)
    login.forget()
    typer.echo(f"{person.name if person else saved.badge} logged out")


@user_app.command("set-password")
@user_errors
def set_password(
    badge: Annotated[str, typer.Argument(help="whose password")],
    pin: Annotated[bool, typer.Option("--pin", help="also set a shop-floor PIN")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a person's password (and PIN): administrators, or the database owner when
    nobody is logged in. Clears a lock-out."""
    password = read_password(f"new password of {badge}", password_stdin)
    if not password_stdin:
        again = read_password("the same again", False)
        if again != password:
            raise fail("the two passwords differ: nothing was changed")
    new_pin = read_password(f"PIN of {badge}", password_stdin) if pin else None
    with administration() as (opened, _admin):
        require(opened, Action.MANAGE_USERS)
        person = identity.set_password(opened, badge, password, new_pin)
    typer.echo(f"password {'and PIN ' if pin else ''}set for {person.name} ({badge})")


@user_app.command("show")
@user_errors
def show(badge: Annotated[str, typer.Argument(help="whose account")]) -> None:
    """A person's roles, whether they have a password and PIN, lock-out and last events."""
    with session() as opened:
        person = identity.person_for(opened, badge)
        roles = sorted(roles_of(opened, person))
        credential = opened.get(Credential, person.id)
        events = list(opened.scalars(select(AuthEvent).where(AuthEvent.badge == badge)
                                     .order_by(AuthEvent.id.desc()).limit(5)))
    typer.echo(f"{person.name} ({badge}), {'active' if person.active else 'INACTIVE'}, "
               f"roles: {', '.join(roles) or 'none'}")
    if credential is None:
        typer.echo("  no password set: mes user set-password " + badge)
    else:
        typer.echo(f"  password set {credential.changed_at:%Y-%m-%d %H:%M}, PIN "
                   f"{'set' if credential.pin_hash else 'not set'}, "
                   f"{credential.failed_attempts} failed attempt(s) since the last login"
                   + (f", locked until {credential.locked_until:%Y-%m-%d %H:%M}"
                      if credential.locked_until else ""))
    for event in events:
        typer.echo(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.event}"
                   + (f" ({event.detail})" if event.detail else ""))
