"""Work requests to the CMMS as a Dagster asset: condition monitoring, then the triggers
over the derived stops and KPIs, then delivery (outbox folder, optional POST). The logic
is `transactional.work_requests`, `.condition` and `.cmms_delivery`; no SQL here."""


import datetime as dt

import dagster as dg

from mes.db import session_factory
from mes.settings import get_settings
from pipelines.resources import MesDatabase
from transactional.audit import acting
from transactional.cmms_delivery import Delivery, deliver
from transactional.condition import monitor
from transactional.permissions import ADMINISTRATION
from transactional.work_requests import evaluate


class WorkRequestConfig(dg.Config):
    lookback_hours: float = 24.0
    # ISO 8601 with a zone; unset: now.
    at: str | None = None


@dg.asset(group_name="maintenance", deps=["kpis"])
def cmms_work_requests(context: dg.AssetExecutionContext, config: WorkRequestConfig,
                       database: MesDatabase) -> dg.MaterializeResult[None]:
    """Open or update CMMS work requests from stops, faults, MTBF, conditions, NCRs; send."""
    until = dt.datetime.fromisoformat(config.at) if config.at else dt.datetime.now(dt.UTC)
    since = until - dt.timedelta(hours=config.lookback_hours)
    settings = get_settings()
    factory = session_factory(database.database_url())
    # Evaluation commits before delivery: a CMMS that is away must not undo the requests.
    with factory() as session, session.begin():
        acting(session, ADMINISTRATION)
        conditions = monitor(session, since=since, until=until)
        report = evaluate(session, at=until, lookback=until - since)
    with factory() as session, session.begin():
        acting(session, ADMINISTRATION)
        delivered = deliver(session, Delivery(
            outbox=settings.cmms_outbox_path, url=settings.cmms_url,
            attempts=settings.cmms_post_attempts,
            backoff_seconds=settings.cmms_backoff_seconds))
    context.log.info(f"{report.summary()}; {delivered.summary()}")
    return dg.MaterializeResult(metadata={
        "condition_events": conditions, "opened": len(report.opened),
        "updated": len(report.updated), "posted": len(delivered.sent),
        "not_delivered": len(delivered.failed)})
