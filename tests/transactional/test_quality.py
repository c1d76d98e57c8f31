"""Quality: inspection results, the automatic hold and nonconformance, signed dispositions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import AdminConnection
from tests.transactional.shop_floor import (
    CERTIFIED,
    HOLE,
    ORDER,
    PASSWORD,
    QUALITY,
    SUPERVISOR,
    acting_as,
    add_lot,
    fresh_lot,
    give_password,
    person_id,
)
from transactional.errors import IllegalTransition, NotFound, NotPermitted, RuleViolation
from transactional.models import (
    AuditLog,
    Disposition,
    ElectronicSignature,
    Equipment,
    LotMovement,
    MaterialLot,
    Nonconformance,
    WorkOrder,
)
from transactional.quality import (
    describe_nonconformance,
    record_inspection,
    verify_signature,
)
from transactional.quality import disposition as sign_disposition


def disposition(session: Session, code: str, decision: str, badge: str, meaning: str,
                comment: str | None = None) -> Disposition:
    """Sign as the acting person `badge`, re-entering their password as at a terminal."""
    give_password(session, badge)
    return sign_disposition(session, code, decision, meaning, comment, password=PASSWORD)



def lot(session: Session, code: str) -> MaterialLot:
    return fresh_lot(session, code)


def ncr(session: Session, code: str) -> Nonconformance:
    with session.begin():
        return session.scalars(select(Nonconformance).where(Nonconformance.code == code)
                               .execution_options(populate_existing=True)).one()


def out_of_spec(session: Session, run_id: int, lot_code: str | None = None,
                sample: int = 1) -> str:
    """Record a hole of 10.3 mm (spec 9.9..10.1) and return the nonconformance's code."""
    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run_id, HOLE, sample, 10.3, CERTIFIED, lot_code)
    assert len(outcome.nonconformances) == 1
    return outcome.nonconformances[0].code


def test_a_result_within_spec_opens_nothing(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run_id, HOLE, 1, 10.1, CERTIFIED, "L-1")
    assert outcome.result.within_spec is True
    assert outcome.nonconformances == []
    assert lot(session, "L-1").status == "available"


def test_a_result_out_of_spec_holds_the_lot_and_opens_a_nonconformance(
        session: Session, run_id: int) -> None:
    lot_id = add_lot(session, "L-1", run_id, 50)

    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run_id, HOLE, 1, 10.3, CERTIFIED, "L-1")

    assert outcome.result.within_spec is False
    assert outcome.held_lots == ["L-1"]
    assert lot(session, "L-1").status == "on_hold"
    opened = ncr(session, outcome.nonconformances[0].code)
    assert re.fullmatch(r"NCR-\d{6}", opened.code)
    with session.begin():
        press = session.scalars(select(Equipment.id).where(Equipment.code == "PRESS-1")).one()
        order_id = session.scalars(select(WorkOrder.id).where(WorkOrder.code == ORDER)).one()
        operator = person_id(session, CERTIFIED)
        line = describe_nonconformance(session, opened)
    assert (opened.status, opened.run_id, opened.work_order_id, opened.equipment_id,
            opened.operator_id, opened.lot_id, opened.inspection_result_id) == (
        "open", run_id, order_id, press, operator, lot_id, outcome.result.id)
    assert (opened.characteristic, opened.measured, opened.lower_spec, opened.upper_spec) == (
        HOLE, 10.3, 9.9, 10.1)
    assert line == (f"{opened.code}: 'hole diameter' measured 10.3, spec 9.9..10.1; order "
                    "4711 on PRESS-1, operator 1001, lot L-1 on hold")


def test_without_a_lot_the_lots_the_run_produced_so_far_are_held(
        session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    add_lot(session, "L-2", run_id, 30)
    add_lot(session, "OTHER", None, 10)
    with acting_as(session, "mes-admin"):
        session.execute(text("UPDATE mes.material_lot SET status = 'consumed' "
                             "WHERE code = 'L-2'"))
    add_lot(session, "L-3", run_id, 20)

    with acting_as(session, CERTIFIED):
        outcome = record_inspection(session, run_id, HOLE, 1, 9.5, CERTIFIED)

    assert outcome.held_lots == ["L-1", "L-3"]
    assert [lot(session, code).status for code in ("L-1", "L-2", "L-3", "OTHER")] == [
        "on_hold", "consumed", "on_hold", "available"]
    # One nonconformance per held lot: each is dispositioned on its own.
    assert sorted(ncr(session, n.code).lot_id or 0 for n in outcome.nonconformances) == [
        lot(session, "L-1").id, lot(session, "L-3").id]


def test_with_no_lot_yet_the_nonconformance_names_none(session: Session, run_id: int) -> None:
    code = out_of_spec(session, run_id)
    opened = ncr(session, code)
    assert opened.lot_id is None
    assert opened.status == "open"


def test_what_cannot_be_recorded(session: Session, run_id: int) -> None:
    with pytest.raises(NotFound, match="operation 10 has no inspection 'width' "
                                       "\\(its inspections: 'flatness', 'hole diameter'\\)"), \
            acting_as(session, CERTIFIED):
        record_inspection(session, run_id, "width", 1, 1.0, CERTIFIED)
    with acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 1, 10.0, CERTIFIED)
    with pytest.raises(RuleViolation, match="sample 1 of 'hole diameter' is already recorded"), \
            acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 1, 10.0, CERTIFIED)
    with pytest.raises(RuleViolation, match="measured nan: not a measurement"), \
            acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 2, float("nan"), CERTIFIED)
    with pytest.raises(NotFound, match="no material lot NOPE"), acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 2, 10.0, CERTIFIED, "NOPE")
    with acting_as(session, "mes-admin"):
        session.execute(text("UPDATE mes.operation_run SET status = 'aborted', "
                             "ended_at = now() WHERE id = :id"), {"id": run_id})
    with pytest.raises(IllegalTransition, match=f"run {run_id} is aborted"), \
            acting_as(session, CERTIFIED):
        record_inspection(session, run_id, HOLE, 2, 10.0, CERTIFIED)


@pytest.mark.parametrize("badge", [CERTIFIED, SUPERVISOR])
def test_only_quality_may_disposition(session: Session, run_id: int, badge: str) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")

    with pytest.raises(NotPermitted, match=f"{badge} .* may not disposition a "
                                           "nonconformance: it needs the role quality"), \
            acting_as(session, badge):
        disposition(session, code, "use_as_is", badge, "approved for use as is")

    assert ncr(session, code).status == "open"
    assert lot(session, "L-1").status == "on_hold"
    with session.begin():
        assert session.scalars(select(ElectronicSignature)).all() == []


def test_use_as_is_releases_the_lot_under_a_signature_bound_to_the_record(
        session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")

    with acting_as(session, QUALITY):
        decided = disposition(session, code, "use_as_is", QUALITY, "approved for use as is",
                              comment="0.2 mm over on a clearance hole: no effect on fit")

    assert lot(session, "L-1").status == "available"
    assert ncr(session, code).status == "dispositioned"
    with session.begin():
        signature = session.get_one(ElectronicSignature, decided.signature_id)
        quality_person = person_id(session, QUALITY)
    assert (signature.person_id, signature.meaning, signature.record_table,
            signature.record_id) == (quality_person, "approved for use as is",
                                     "nonconformance", ncr(session, code).id)
    assert re.fullmatch(r"[0-9a-f]{64}", signature.record_sha256)
    assert signature.signed_at is not None
    with session.begin():
        check = verify_signature(session, signature.id)
    assert check.intact, check.detail
    assert check.detail.endswith(f"matches {code} as signed")


def test_a_second_disposition_is_refused(session: Session, run_id: int) -> None:
    code = out_of_spec(session, run_id)
    with acting_as(session, QUALITY):
        disposition(session, code, "rework", QUALITY, "rework ordered")

    with pytest.raises(IllegalTransition, match=f"{code} is already dispositioned: rework by "
                                                "2001"), acting_as(session, QUALITY):
        disposition(session, code, "use_as_is", QUALITY, "approved for use as is")
    with session.begin():
        assert len(session.scalars(select(Disposition)).all()) == 1


def test_scrap_scraps_the_lot_and_takes_it_out_of_stock(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")

    with acting_as(session, QUALITY):
        disposition(session, code, "scrap", QUALITY, "scrapped: holes out of tolerance")

    scrapped = lot(session, "L-1")
    assert (scrapped.status, scrapped.quantity) == ("scrapped", 0)
    with session.begin():
        moves = session.execute(select(LotMovement.kind, LotMovement.quantity).where(
            LotMovement.lot_id == scrapped.id).order_by(LotMovement.id)).all()
    assert [tuple(m) for m in moves] == [("produce", 50), ("scrap", -50)]


def test_rework_keeps_the_lot_on_hold(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")
    with acting_as(session, QUALITY):
        disposition(session, code, "rework", QUALITY, "rework: ream the holes")
    assert lot(session, "L-1").status == "on_hold"
    assert ncr(session, code).status == "dispositioned"


def test_a_lot_with_another_open_nonconformance_stays_on_hold(
        session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    first = out_of_spec(session, run_id, "L-1", sample=1)
    second = out_of_spec(session, run_id, "L-1", sample=2)

    with acting_as(session, QUALITY):
        disposition(session, first, "use_as_is", QUALITY, "approved for use as is")
    assert lot(session, "L-1").status == "on_hold"
    with acting_as(session, QUALITY):
        disposition(session, second, "use_as_is", QUALITY, "approved for use as is")
    assert lot(session, "L-1").status == "available"


def test_a_bad_decision_or_an_empty_meaning_is_refused(session: Session, run_id: int) -> None:
    code = out_of_spec(session, run_id)
    with pytest.raises(RuleViolation, match="'keep' is not a disposition"), \
            acting_as(session, QUALITY):
        disposition(session, code, "keep", QUALITY, "approved")
    with pytest.raises(RuleViolation, match="a signature needs its meaning"), \
            acting_as(session, QUALITY):
        disposition(session, code, "scrap", QUALITY, " ")
    with pytest.raises(NotFound, match="no nonconformance NCR-999999"), \
            acting_as(session, QUALITY):
        disposition(session, "NCR-999999", "scrap", QUALITY, "scrapped")


@pytest.mark.parametrize("tampering", [
    "UPDATE mes.nonconformance SET measured = 10.05",
    "UPDATE mes.nonconformance SET upper_spec = 10.5",
    "UPDATE mes.disposition SET decision = 'use_as_is'",
    "UPDATE mes.disposition SET comment = 'all fine'",
    # The signature's own fields (Part 11 §11.70): who, when, what it means.
    "UPDATE mes.electronic_signature SET person_id = (SELECT id FROM mes.person "
    "WHERE badge = '3001')",
    "UPDATE mes.electronic_signature SET signed_at = signed_at - interval '1 day'",
    "UPDATE mes.electronic_signature SET meaning = 'approved'",
    "UPDATE mes.electronic_signature SET printed_name = 'Dana Novak'",
])
def test_a_change_to_the_signed_record_is_detected(
        session: Session, run_id: int, db_admin: AdminConnection, tampering: str) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")
    with acting_as(session, QUALITY):
        signature_id = disposition(session, code, "rework", QUALITY, "rework ordered").signature_id
    with session.begin():
        assert verify_signature(session, signature_id).intact

    # A superuser who also switches the audit triggers off.
    db_admin.execute("SET session_replication_role = replica")
    db_admin.execute(tampering)
    db_admin.execute("RESET session_replication_role")

    with session.begin():
        check = verify_signature(session, signature_id)
    assert not check.intact
    assert check.detail.startswith(f"signature {signature_id}, signed by ")
    assert check.detail.endswith(f": {code} or its signature was changed after it was signed")


def test_quality_records_are_audited_under_the_badge(session: Session, run_id: int) -> None:
    add_lot(session, "L-1", run_id, 50)
    code = out_of_spec(session, run_id, "L-1")
    with acting_as(session, QUALITY):
        disposition(session, code, "use_as_is", QUALITY, "approved for use as is")

    with session.begin():
        rows = session.execute(
            select(AuditLog.table_name, AuditLog.action, AuditLog.actor, AuditLog.after)
            .where(AuditLog.table_name.in_(["inspection_result", "nonconformance",
                                            "electronic_signature", "disposition",
                                            "material_lot"]),
                   AuditLog.actor != "mes-admin")
            .order_by(AuditLog.id)).all()
    assert [(r.table_name, r.action, r.actor) for r in rows] == [
        ("inspection_result", "insert", CERTIFIED),
        ("material_lot", "update", CERTIFIED),        # on hold
        ("nonconformance", "insert", CERTIFIED),
        ("nonconformance", "update", QUALITY),        # dispositioned
        ("electronic_signature", "insert", QUALITY),
        ("disposition", "insert", QUALITY),
        ("material_lot", "update", QUALITY),          # available again
    ]
    assert rows[1].after["status"] == "on_hold"
    assert rows[5].after["decision"] == "use_as_is"
    assert rows[6].after["status"] == "available"
