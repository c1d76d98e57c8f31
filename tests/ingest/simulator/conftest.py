"""Fixtures for the simulator tests: the sample plant and small plants built from it.

These tests run real servers on loopback ports chosen by the OS; they need no database.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import SAMPLE_PLANT
from transactional.plant_file import PlantDefinition, read_plant_file

PlantMaker = Callable[..., PlantDefinition]


@pytest.fixture(scope="session")
def plant() -> PlantDefinition:
    return read_plant_file(SAMPLE_PLANT)


@pytest.fixture(scope="session")
def sample_raw() -> dict[str, Any]:
    with SAMPLE_PLANT.open("rb") as file:
        return tomllib.load(file)


@pytest.fixture
def make_plant(sample_raw: dict[str, Any]) -> PlantMaker:
    """The sample plant with its machines and state models replaced."""

    def make(machines: list[dict[str, Any]],
             states: list[dict[str, Any]] | None = None) -> PlantDefinition:
        raw = copy.deepcopy(sample_raw)
        raw["machines"] = machines
        if states is not None:
            raw["state_models"] = [{"code": "STD", "name": "Test states", "states": states}]
        return PlantDefinition.model_validate(raw)

    return make


def machine(code: str, *signals: tuple[str, str], **extra: Any) -> dict[str, Any]:
    """A machine on line L1 with signals given as (code suffix, kind)."""
    return {"code": code, "name": f"Machine {code}", "line": "L1", "state_model": "STD",
            "signals": [{"code": f"{code}.{suffix}", "name": suffix, "kind": kind}
                        for suffix, kind in signals], **extra}
