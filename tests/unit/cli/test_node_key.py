"""Node keys end to end: ``hpresil token --node`` writes one, the agent's client signs
with it and the real controller (uvicorn) accepts its own reports and nothing more;
on a node without the cluster token the CLI reads with the node's key."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.auth import node_key
from hpresil.cli.main import main
from hpresil.client import ControllerClient
from hpresil.config import load
from hpresil.errors import RejectedByController
from hpresil.store import Store
from hpresil.store.models import ReportRow
from tests.unit.controller.fakes import TOKEN, FakeBackend, FakeClock, report, xid79
from tests.unit.controller.test_reports import count

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def node_config(tmp_path: Path, controller: str, clock: FakeClock) -> Path:
    """node2's config: no cluster token there, its key in ``keys/node2.key``."""
    clock.now = datetime.now(UTC)  # the client signs with the real time
    (tmp_path / "keys").mkdir(mode=0o700)
    key_file = tmp_path / "keys" / "node2.key"
    key_file.write_text(node_key(TOKEN, "node2") + "\n")
    key_file.chmod(0o600)
    path = tmp_path / "node2.toml"
    path.write_text(
        f'[controller]\nurl = "{controller}"\ntoken_file = "{tmp_path}/absent-token"\n'
        f'[agent]\nnode = "node2"\nkey_file = "{tmp_path}/keys/{{node}}.key"\n'
    )
    return path


def test_the_agents_client_signs_and_the_controller_takes_its_own_reports(
    node_config: Path, store: Store
) -> None:
    with ControllerClient.for_node(load(node_config), "node2") as client:
        ack = client.post_report(report("node2", xid79()))
        assert ack.accepted and ack.incidents
        with pytest.raises(RejectedByController, match="403") as refused:
            client.post_report(report("node3", xid79()))  # another node's fault: forged
        assert "node: 'node3' is not 'node2'" in str(refused.value)
        with pytest.raises(RejectedByController, match="403"):
            client.resume("node2")
    assert count(store, ReportRow) == 1


def test_the_cli_on_a_node_reads_with_its_key_and_may_not_drain_others(
    node_config: Path, capsys: Capture, backend: FakeBackend
) -> None:
    with ControllerClient.for_node(load(node_config), "node2") as client:
        (number,) = client.post_report(report("node2", xid79())).incidents
    assert main(["--config", str(node_config), "incidents", "--json"]) == 0
    (seen,) = json.loads(capsys.readouterr().out)
    assert (seen["id"], seen["node"]) == (number, "node2")
    code = main(["--config", str(node_config), "drain", "node1", "--reason", "forged"])
    _, err = capsys.readouterr()
    assert code != 0 and "403" in err and "may not POST /v1/nodes/node1/drain" in err
    assert backend.writes("state") == []


def test_token_node_writes_the_nodes_key_file(
    config: Path, tmp_path: Path, capsys: Capture
) -> None:
    out = tmp_path / "node7.key"
    assert main(["--config", str(config), "token", "--node", "node7", "--out", str(out)]) == 0
    assert out.read_text() == node_key(TOKEN, "node7") + "\n"
    assert os.stat(out).st_mode & 0o777 == 0o600
    assert "node7" in capsys.readouterr().out
    assert main(["--config", str(config), "token", "--node", "node7", "--out", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert main(["--config", str(config), "token", "--node", "node7", "--out", "-"]) == 0
    assert capsys.readouterr().out == node_key(TOKEN, "node7") + "\n"


@pytest.mark.parametrize(
    "args", [["--node", "no/de"], ["--out", "x.key"]], ids=["bad-name", "out-without-node"]
)
def test_token_refuses_a_bad_node_name_or_a_stray_out(
    config: Path, capsys: Capture, args: list[str]
) -> None:
    assert main(["--config", str(config), "token", *args]) == 2
    err = capsys.readouterr().err
    assert "not a node name" in err or "--out goes with --node" in err
