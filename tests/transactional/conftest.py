"""Fixtures shared by the transactional tests."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests.transactional.shop_floor import ShopFloor, build


@pytest.fixture
def floor(session: Session) -> ShopFloor:
    """The shop floor of `shop_floor.py`: the sample plant, a bracket's routing, order 4711."""
    return build(session)
