"""Shop-floor fixtures for every test package: the floor of `shop_floor.py` and a running run
(registered in `tests/conftest.py`)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tests.transactional.shop_floor import ShopFloor, build, stamping_run


@pytest.fixture
def floor(session: Session) -> ShopFloor:
    """The shop floor of `shop_floor.py`: the sample plant, a bracket's routing, order 4711."""
    return build(session)


@pytest.fixture
def run_id(session: Session, floor: ShopFloor) -> int:
    """Operation 10 of order 4711 running on PRESS-1, operator 1001."""
    return stamping_run(session)
