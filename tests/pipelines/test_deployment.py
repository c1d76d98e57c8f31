"""The example configuration for Dagster on more than one host (deploy/dagster/) is one
Dagster accepts: its instance loads with runs launched in Docker containers and the same
run limits as the local instance. (No Docker engine runs here; no run is launched.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
from dagster_docker import DockerRunLauncher

from pipelines.instance import DAGSTER_HOME, dagster_environment

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "dagster"


def test_the_multi_host_instance_launches_each_run_in_a_container(
        db_url: str, dagster_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = dagster_environment(db_url) | {"MES_DAGSTER_PG_DB": dagster_db,
                                                 "MES_PIPELINES_IMAGE": "mes-pipelines:1.0"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        coordinator = instance.run_coordinator
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.image == "mes-pipelines:1.0"
        assert launcher.networks == ["mes"]
        assert {"MES_DATABASE_URL", "MES_DAGSTER_PG_HOST"} <= set(launcher.env_vars)
        assert isinstance(coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        limits = queue.tag_concurrency_limits

    local = yaml.safe_load((DAGSTER_HOME / "dagster.yaml").read_text())
    assert list(limits) == local["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {limit["key"] for limit in limits} == {"dagster/partition", "dagster/partition/site"}


def test_the_code_image_serves_the_definitions_the_workspace_names() -> None:
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert location["grpc_server"]["host"] in compose["services"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-p", "{location["grpc_server"]["port"]}", "-m", "pipelines.definitions"' in dockerfile
    # Every package the definitions import is copied into the image.
    for package in ("mes", "transactional", "ingest", "pipelines", "sql"):
        assert f"COPY {package} {package}" in dockerfile
