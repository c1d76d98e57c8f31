"""Bounds on what people type: the length of codes, and quantities per unit of measure.

A value out of bounds is refused with a message naming the field, before the database
sees it (a 10,000-character code would otherwise fail deep inside an index).
"""

from __future__ import annotations

import math

from transactional.errors import RuleViolation

MAX_CODE = 64
# No plant counts or weighs more than this in one movement or report.
MAX_QUANTITY = 1e9
# Units counted in whole pieces; every other unit is measured to 1/1000.
COUNTED_UNITS = frozenset({"pcs", "pc", "ea", "each", "piece", "pieces", "unit", "units"})
RESOLUTION = 1e-3


def code(value: str, field: str) -> str:
    """A code or id a person typed: 1 to 64 characters."""
    if not value or not value.strip():
        raise RuleViolation(f"{field}: empty")
    if len(value) > MAX_CODE:
        raise RuleViolation(f"{field}: {len(value)} characters, at most {MAX_CODE} allowed "
                            f"('{value[:20]}...')")
    return value


def quantity(value: float, unit: str | None, field: str, *, zero: bool = False) -> float:
    """A quantity in `unit`: finite, positive (or 0 with `zero`), at most MAX_QUANTITY, in
    whole pieces for counted units and at most to 1/1000 otherwise."""
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise RuleViolation(f"{field}: the quantity must be a positive number, not {value:g}")
    if value > MAX_QUANTITY:
        raise RuleViolation(f"{field}: {value:g} is more than {MAX_QUANTITY:g}, the most one "
                            "entry may hold")
    counted = unit is not None and unit.strip().lower() in COUNTED_UNITS
    step = 1.0 if counted else RESOLUTION
    if abs(value / step - round(value / step)) > 1e-9 * max(1.0, value / step):
        what = "whole pieces" if counted else f"steps of {RESOLUTION:g} {unit}"
        raise RuleViolation(f"{field}: {value:g} {unit or ''} is not in {what}".replace(
            "  ", " "))
    return value
