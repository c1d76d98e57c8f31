"""The errors a user can cause and act on, under one root: `MesError`.

A plant rule that refuses an action, a file with problems, a database that cannot be reached
or set up: each says, in the plant's words, what was refused and why. The command line
catches `MesError` once and prints it; the caller's transaction is rolled back, so nothing
is half-written. Programming errors are not `MesError`s: they surface as tracebacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar


class MesError(Exception):
    """Something a user caused and can act on; the message says what and what to do."""


class RuleViolation(MesError, ValueError):
    """An action the plant's rules refuse (the base of the specific ones below)."""


class NotFound(RuleViolation):
    """A code (order, lot, machine, person...) that names nothing."""


class IllegalTransition(RuleViolation):
    """A work order, run, lot or document asked to move to a state it may not reach."""


class NotPermitted(RuleViolation):
    """A person without the role or certification the action needs."""


class ConcurrentChange(RuleViolation):
    """Someone else changed the record first; read it again and retry."""


class FileProblems(MesError, ValueError):
    """An input file refused as a whole: `path` and every problem found in it.

    Each kind of file says in `refusal` what happened to it ("plant file rejected, nothing
    was written"); each problem names the line, key or record it is about.
    """

    refusal: ClassVar[str] = "file rejected, nothing was written"

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{self.path}: {self.refusal}:\n{lines}")
