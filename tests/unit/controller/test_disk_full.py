"""The controller's database disk fills up (issue 9, "fill the disk"): a report is
answered 503 naming the full disk (the agent keeps it and sends it again), nothing
half-stored, and once there is room the same report opens one incident and one
drain."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.controller.app import create_app
from hpresil.store import Store
from hpresil.store.models import ActionRow, IncidentRow, ReportRow
from tests.diskfull import SmallDisk, small_disk
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, xid79


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "state", size_kib=4096) as d:
        yield d


def _count(store: Store, model: type[Any]) -> int:
    with store.read() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_full_database_disk_defers_the_report_and_loses_nothing(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{disk.path / 'hpresil.db'}"
    store = Store.open(url)
    store.migrate()
    config = Config(
        controller=ControllerConfig(database=url), policy=PolicyConfig(expedite_requeue=False)
    )
    slurm = Slurm(FakeBackend("node1"), retries=0, backoff_s=0)
    app = create_app(store=store, slurm=slurm, config=config, token=TOKEN, clock=FakeClock())
    fault = report("node1", xid79(), seq=1).model_dump(mode="json")
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/v1/nodes").status_code == 200
        disk.fill()
        refused = client.post("/v1/reports", json=fault)
        assert refused.status_code == 503
        assert refused.json() == {"detail": "database disk full; try again once there is room"}
        told = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert told and "database disk full" in told[-1].getMessage()
        disk.free()
        assert (_count(store, ReportRow), _count(store, IncidentRow)) == (0, 0)
        accepted = client.post("/v1/reports", json=fault)  # the agent's next try
        assert accepted.status_code == 200 and accepted.json()["duplicate"] is False
    assert (_count(store, ReportRow), _count(store, IncidentRow)) == (1, 1)
    with store.read() as s:
        assert [a.kind for a in s.scalars(select(ActionRow))] == ["drain"]
    store.close()
