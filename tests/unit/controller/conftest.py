from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.config.limits import LimitsConfig
from hpresil.controller.app import create_app
from hpresil.controller.reconcile import Reconciler
from hpresil.controller.recovery import Ladder
from hpresil.controller.remediation import Backoff, Executor
from hpresil.store import Store
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock
from tests.unit.controller.ladderlab import Lab, make_ladder

NODES = ("node1", "node2", "node3")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cfg(db_url: str) -> Config:
    db = db_url  # every controller test runs on SQLite and on PostgreSQL
    # expedite runs on a side thread; tests that want it turn it on
    # and the drain cap is the whole fleet: tests of the limits set their own
    policy = PolicyConfig(expedite_requeue=False, limits=LimitsConfig(max_out_pct=100))
    return Config(controller=ControllerConfig(database=db, stale_after_s=60), policy=policy)


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    st = Store.open(cfg.controller.database)
    st.migrate()
    yield st
    st.close()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(*NODES)


@pytest.fixture
def slurm(backend: FakeBackend, cfg: Config) -> Slurm:
    return Slurm(backend, prefix=cfg.policy.reason_prefix, retries=0, backoff_s=0)


@pytest.fixture
def executor(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Executor:
    return Executor(store, slurm, cfg.policy, clock=clock, backoff=Backoff(base_s=0.5))


@pytest.fixture
def reconciler(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Reconciler:
    return Reconciler(store, slurm, cfg.controller, clock=clock, policy=cfg.policy)


@pytest.fixture
def client(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, executor: Executor
) -> Iterator[TestClient]:
    app = create_app(
        store=store, slurm=slurm, config=cfg, token=TOKEN, clock=clock, wake=executor.wake
    )
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture
def ladder(store: Store, slurm: Slurm, clock: FakeClock, executor: Executor) -> Ladder:
    return make_ladder(store, slurm, clock, executor)


@pytest.fixture
def lab(
    client: TestClient,
    executor: Executor,
    reconciler: Reconciler,
    ladder: Ladder,
    backend: FakeBackend,
) -> Lab:
    """The pieces one pass of the leader runs (the recovery ladder's tests)."""
    return Lab(client, executor, reconciler, ladder, backend)
