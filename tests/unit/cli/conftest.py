"""A real controller for the CLI to talk to: the FastAPI app from ``create_app`` over a
migrated SQLite store and the fake Slurm backend, served by uvicorn on a free port.

Tests take the pieces as fixtures (``controller`` is its URL, ``config`` a file that
points the CLI at it), so nothing here needs importing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.config import Config, ControllerConfig, PolicyConfig
from hpresil.controller.app import create_app
from hpresil.controller.remediation import Executor
from hpresil.store import Store
from tests.serve import served
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock


@pytest.fixture
def config_for(tmp_path: Path) -> Callable[[str, int], Path]:
    """``config_for(url, mode)``: a CLI config for ``url`` and a token file with ``mode``."""

    def write(url: str, mode: int) -> Path:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(mode)
        path = tmp_path / "hpresil.toml"
        path.write_text(f'[controller]\nurl = "{url}"\ntoken_file = "{token_file}"\n')
        return path

    return write


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    db = f"sqlite:///{tmp_path}/hpresil.db"
    return Config(
        controller=ControllerConfig(database=db), policy=PolicyConfig(expedite_requeue=False)
    )


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    st = Store.open(cfg.controller.database)
    st.migrate()
    yield st
    st.close()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend("node1", "node2", "node3")


@pytest.fixture
def slurm(backend: FakeBackend, cfg: Config) -> Slurm:
    return Slurm(backend, prefix=cfg.policy.reason_prefix, retries=0, backoff_s=0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def executor(store: Store, slurm: Slurm, cfg: Config, clock: FakeClock) -> Executor:
    return Executor(store, slurm, cfg.policy, clock=clock)


@pytest.fixture
def controller(
    store: Store, slurm: Slurm, cfg: Config, clock: FakeClock, executor: Executor
) -> Iterator[str]:
    """The controller's URL, served by uvicorn from a background thread."""
    app = create_app(
        store=store, slurm=slurm, config=cfg, token=TOKEN, clock=clock, wake=executor.wake
    )
    with served(app) as url:
        yield url


@pytest.fixture
def config(controller: str, config_for: Callable[[str, int], Path]) -> Path:
    """A CLI config pointing at the live controller, with its token (mode 0600)."""
    return config_for(controller, 0o600)
