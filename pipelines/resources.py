"""The database as a Dagster resource: the project's own URL (MES_DATABASE_URL or the
local cluster), read when a run starts, never when the definitions are imported."""

from __future__ import annotations

import dagster as dg

from mes.db import database_url
from mes.settings import get_settings
from pipelines.reading import DerivationSettings


class MesDatabase(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where the hypertables, the plant model and the derived tables live."""

    url: str | None = None
    micro_stop_seconds: float | None = None

    def database_url(self) -> str:
        return self.url or database_url()

    def derivation_settings(self) -> DerivationSettings:
        seconds = self.micro_stop_seconds
        return DerivationSettings(
            micro_stop_seconds=get_settings().micro_stop_seconds if seconds is None else seconds)
