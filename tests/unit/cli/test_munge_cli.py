"""The CLI on a login node: no cluster token, no node key, so the person running proves
who they are with MUNGE (a private munged: tests/munged.py), against the real
controller (uvicorn). Anyone may read; root is an operator; nobody's drain is one line."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpresil.cli.main import main
from hpresil.client import ControllerClient
from hpresil.config import Config, ControllerConfig, PolicyConfig, load
from tests.unit.controller.fakes import FakeBackend
from tests.unit.controller.test_api_edge import as_nobody

pytest_plugins = ["tests.munged"]

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def cfg(tmp_path: Path, munge_socket: str) -> Config:
    """The controller's settings: its munged is the test session's; no operators group."""
    db = f"sqlite:///{tmp_path}/hpresil.db"
    controller = ControllerConfig(database=db, munge_socket=munge_socket, operators_group="")
    return Config(controller=controller, policy=PolicyConfig(expedite_requeue=False))


@pytest.fixture
def login_config(controller: str, munge_socket: str) -> Iterator[Path]:
    """A login node's config, in a folder anyone may read: no token, no node key."""
    folder = Path(tempfile.mkdtemp(prefix="hpresil-login-"))
    folder.chmod(0o755)
    path = folder / "hpresil.toml"
    path.write_text(
        f'[controller]\nurl = "{controller}"\ntoken_file = "{folder}/absent-token"\n'
        f'munge_socket = "{munge_socket}"\n'
        f'[agent]\nkey_file = "{folder}/absent.key"\n'
    )
    path.chmod(0o644)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def test_root_reads_and_drains_and_the_ledger_names_root(
    login_config: Path, capsys: Capture, backend: FakeBackend
) -> None:
    assert main(["--config", str(login_config), "status", "--json"]) == 0
    assert main(["--config", str(login_config), "drain", "node1", "--reason", "bad fan"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "node1: drained (incident #1)"
    assert "DRAIN" in backend.nodes_by_name["node1"].states
    with ControllerClient.from_config(load(login_config)) as client:
        (action,) = client.incident(1).actions
    assert action.why == "root (munge uid 0): bad fan"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_nobody_reads_and_their_drain_is_a_one_line_403(
    login_config: Path, backend: FakeBackend
) -> None:
    assert as_nobody(["--config", str(login_config), "status"])[0] == 0
    code, err = as_nobody(["--config", str(login_config), "drain", "node1", "--reason", "x"])
    assert err.splitlines() == [
        "hpresil: controller refused the request (403): nobody (uid 65534) is not an "
        "operator: not in controller.operators (controller.operators_group is unset)"
    ]
    assert code == 1
    assert "DRAIN" not in backend.nodes_by_name["node1"].states


def test_munged_down_is_one_line(login_config: Path, tmp_path: Path, capsys: Capture) -> None:
    text = login_config.read_text().replace("munge_socket = ", f'munge_socket = "{tmp_path}/x"\n#')
    login_config.write_text(text)
    assert main(["--config", str(login_config), "status"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f'hpresil: MUNGE: Failed to access "{tmp_path}/x"')


def test_without_munge_it_is_the_token_files_one_line(
    login_config: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no munge here
    assert main(["--config", str(login_config), "status"]) == 2
    token = login_config.parent / "absent-token"
    assert capsys.readouterr().err.splitlines() == [
        f"hpresil: token file {token}: not found (create it with `hpresil token`)"
    ]
