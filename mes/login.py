"""The command line's side of logging in: where the session token is kept, and the policy
(idle timeout, lock-out) from the settings.

The token file is written with mode 0600 and holds the token and the badge it belongs to,
never a password. Authentication itself is `transactional.identity`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mes.settings import Settings, get_settings
from transactional.errors import NotPermitted
from transactional.identity import Policy


@dataclass(frozen=True)
class SavedLogin:
    badge: str
    token: str


def policy(settings: Settings | None = None) -> Policy:
    settings = settings or get_settings()
    return Policy(idle_timeout=dt.timedelta(minutes=settings.session_idle_minutes),
                  max_session=dt.timedelta(hours=settings.session_max_hours),
                  max_failures=settings.lockout_failures,
                  lockout=dt.timedelta(minutes=settings.lockout_minutes))


def token_path() -> Path:
    return get_settings().session_path


def save(badge: str, token: str) -> Path:
    """Write the session token, readable by this user only."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        json.dump({"badge": badge, "token": token}, file)
    return path


def saved() -> SavedLogin | None:
    """The saved login, if any; a token file others can read is refused, not used."""
    path = token_path()
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        raise NotPermitted(f"{path} can be read by others: remove it and log in again")
    try:
        data = json.loads(path.read_text())
        return SavedLogin(str(data["badge"]), str(data["token"]))
    except (ValueError, KeyError, TypeError):
        return None


def forget() -> None:
    token_path().unlink(missing_ok=True)
