"""The plant's vocabulary: equipment levels, state categories, signal and material kinds.

Plain names without SQLAlchemy, so plant files, tag maps and collectors can speak them
without loading the ORM; the models and the migrations' CHECK constraints use the same words.
"""

from __future__ import annotations

from typing import Literal, get_args

EquipmentLevel = Literal["enterprise", "site", "area", "work_center", "work_unit"]
StateCategory = Literal["running", "setup", "idle", "planned_stop", "unplanned_stop", "offline"]
SignalKind = Literal["state", "good_count", "reject_count", "process_value"]
MaterialKind = Literal["raw", "intermediate", "product", "consumable"]

EQUIPMENT_LEVELS: tuple[EquipmentLevel, ...] = get_args(EquipmentLevel)
PARENT_LEVEL: dict[EquipmentLevel, EquipmentLevel | None] = {
    "enterprise": None,
    "site": "enterprise",
    "area": "site",
    "work_center": "area",
    "work_unit": "work_center",
}
