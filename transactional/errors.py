"""The errors the MES services raise when a plant rule refuses an action.

Each says, in the plant's words, what was refused and why; the command line prints it and
the caller's transaction is rolled back, so nothing is half-written.
"""

from __future__ import annotations


class RuleViolation(ValueError):
    """An action the plant's rules refuse (the base of the specific ones below)."""


class NotFound(RuleViolation):
    """A code (order, lot, machine, person...) that names nothing."""


class IllegalTransition(RuleViolation):
    """A work order, run, lot or document asked to move to a state it may not reach."""


class NotPermitted(RuleViolation):
    """A person without the role or certification the action needs."""


class ConcurrentChange(RuleViolation):
    """Someone else changed the record first; read it again and retry."""
