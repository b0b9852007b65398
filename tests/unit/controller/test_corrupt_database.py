"""The API tells a damaged database from a busy one (issue 9, defect 8): 500 and a
loud log line, not "busy; try again" for agents to retry forever."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, ControllerConfig
from hpresil.controller.app import create_app
from hpresil.store import Store
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock
from tests.unit.store.test_corruption import damage, filled


def test_a_database_damaged_at_run_time_answers_500_and_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hpresil.db"
    filled(path).close()
    store = Store.open(f"sqlite:///{path}")
    store.migrate()  # sound at start
    store.close()
    damage(path, "nodes")  # then a disk goes bad under it
    config = Config(controller=ControllerConfig(database=f"sqlite:///{path}"))
    slurm = Slurm(FakeBackend("node1"), retries=0, backoff_s=0)
    app = create_app(store=store, slurm=slurm, config=config, token=TOKEN, clock=FakeClock())
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        answer = client.get("/v1/nodes")
    assert answer.status_code == 500
    assert answer.json() == {"detail": "database corrupt; see the controller log"}
    loud = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert loud and str(path) in loud[-1].getMessage()
