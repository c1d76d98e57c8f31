"""Several stations at once: each thread has its own session and transaction, as two
terminals on the floor would."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mes.db import session_factory
from tests.transactional.shop_floor import (
    CERTIFIED,
    ORDER,
    STAMPING,
    SUPERVISOR,
    ShopFloor,
    acting_as,
    set_order_status,
    sign_on_directly,
)
from transactional.audit import acting, verify_chain
from transactional.errors import ConcurrentChange, RuleViolation
from transactional.labor import sign_on
from transactional.models import LaborSession, OperationRun, WorkOrder
from transactional.orders import report, start_run, transition

# Reports stop at twice the planned 100 (orders.MAX_OVERRUN): 40 x 1 + 40 x 3 = 160.
REPORTS_PER_THREAD = 40


def in_threads(*work: Callable[[], None]) -> list[BaseException | None]:
    """Run each callable in its own thread; what each raised, or None."""
    outcomes: list[BaseException | None] = [None] * len(work)

    def runner(index: int) -> None:
        try:
            work[index]()
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a station hung"
    return outcomes


def test_reports_from_two_stations_at_once_add_up_exactly(
        db_url: str, session: Session, floor: ShopFloor) -> None:
    set_order_status(session, "released")
    sign_on_directly(session, CERTIFIED, "PRESS-1")
    with acting_as(session, CERTIFIED):
        run_id = start_run(session, ORDER, STAMPING, "PRESS-1", CERTIFIED).id
    factory = session_factory(db_url)
    start = threading.Barrier(2)

    def station(good: float, scrap: float) -> Callable[[], None]:
        def work() -> None:
            start.wait()
            for _ in range(REPORTS_PER_THREAD):
                with factory() as own, own.begin():
                    acting(own, CERTIFIED)
                    report(own, run_id, good, scrap)
        return work

    assert in_threads(station(1, 0), station(2, 1)) == [None, None]

    with session.begin():
        run = session.scalars(select(OperationRun).where(OperationRun.id == run_id)
                              .execution_options(populate_existing=True)).one()
        assert run.good_quantity == REPORTS_PER_THREAD * (1 + 2)
        assert run.scrap_quantity == REPORTS_PER_THREAD * 1
        assert run.version == 1 + 2 * REPORTS_PER_THREAD
        # The audit chain stayed one unbroken line through the interleaved writes.
        assert verify_chain(session).intact


def test_two_supervisors_changing_the_same_order_one_wins(
        db_url: str, session: Session, floor: ShopFloor) -> None:
    factory = session_factory(db_url)
    both_read = threading.Barrier(2)
    wins: list[str] = []

    def supervisor(to_status: str) -> Callable[[], None]:
        def work() -> None:
            with factory() as own, own.begin():
                acting(own, SUPERVISOR)
                seen = own.scalars(select(WorkOrder.version)
                                   .where(WorkOrder.code == ORDER)).one()
                # Both screens show version 1 before either supervisor presses the button.
                both_read.wait()
                transition(own, ORDER, to_status, expected_version=seen)
                wins.append(to_status)
        return work

    outcomes = in_threads(supervisor("released"), supervisor("cancelled"))

    refused = [o for o in outcomes if o is not None]
    assert len(wins) == 1 and len(refused) == 1
    assert isinstance(refused[0], ConcurrentChange), refused[0]
    assert "version 2, you saw 1" in str(refused[0])
    with session.begin():
        order = session.scalars(select(WorkOrder).where(WorkOrder.code == ORDER)
                                .execution_options(populate_existing=True)).one()
    assert (order.status, order.version) == (wins[0], 2)


def test_signing_on_at_two_machines_at_the_same_moment_leaves_one_session(
        db_url: str, session: Session, floor: ShopFloor) -> None:
    factory = session_factory(db_url)
    first_in = threading.Event()

    def first() -> None:
        with factory() as own, own.begin():
            acting(own, CERTIFIED)
            sign_on(own, CERTIFIED, "PRESS-1")
            first_in.set()
            # Commit only once the other station, past its own check (it cannot see this
            # uncommitted session), waits on the one-open-session index.
            with factory() as watcher:
                deadline = time.monotonic() + 30
                while not watcher.scalar(text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND wait_event_type = 'Lock'")):
                    assert time.monotonic() < deadline, "the second station never waited"
                    watcher.rollback()
                    time.sleep(0.01)

    def second() -> None:
        first_in.wait(timeout=30)
        with factory() as own, own.begin():
            acting(own, CERTIFIED)
            sign_on(own, CERTIFIED, "PRESS-2")

    outcomes = in_threads(first, second)

    assert outcomes[0] is None
    assert isinstance(outcomes[1], RuleViolation), outcomes[1]
    assert str(outcomes[1]) == ("1001 was signed on elsewhere at the same moment: sign off "
                                "there first")
    with session.begin():
        assert session.scalar(select(LaborSession.id).where(
            LaborSession.signed_off_at.is_(None))) is not None
        assert len(session.scalars(select(LaborSession)).all()) == 1
