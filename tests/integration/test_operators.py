"""People act as themselves on the lab (issue 11): the CLI on a "login node" (a config
without the cluster token or a node key) proves who runs it with the lab's munged, as
Slurm's own commands do. ``nobody`` reads and is refused a drain in one line, node1
staying in service; root drains and resumes through MUNGE and the ledger names root.

``nobody`` runs the CLI in a forked child that drops to that user (this machine's
Python may live where nobody cannot execute it); the credential is made by ``munge``
run as nobody all the same."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lab import VENV, Lab
from scenario import api_get, incidents_after, newest_incident_id, node_state, wait_for

from tests.unit.controller.test_api_edge import as_nobody

NODE = "node1"


@pytest.fixture
def login_config(clean_lab: Lab) -> Iterator[Path]:
    """The lab's config with no token and no node key, in a folder anyone may read."""
    folder = Path(tempfile.mkdtemp(prefix="hpresil-it-login-"))
    folder.chmod(0o755)
    text = clean_lab.hpresil_conf.read_text()
    text = re.sub(r"(?m)^token_file = .*$", f'token_file = "{folder}/no-token"', text)
    text = re.sub(r"(?m)^key_file = .*$", f'key_file = "{folder}/no-{{node}}.key"', text)
    path = folder / "hpresil.toml"
    path.write_text(text)
    path.chmod(0o644)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def as_root(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(VENV / "bin" / "hpresil"), "--config", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_nobody_reads_and_may_not_drain(clean_lab: Lab, login_config: Path) -> None:
    before = newest_incident_id(clean_lab)
    code, err = as_nobody(["--config", str(login_config), "status"])
    assert (code, err) == (0, "")
    code, err = as_nobody(["--config", str(login_config), "drain", NODE, "--reason", "x"])
    (line,) = err.splitlines()
    assert line.startswith(
        "hpresil: controller refused the request (403): nobody (uid 65534) is not an operator: "
    )
    assert "controller.operators_group" in line and code == 1
    time.sleep(1)  # and nothing happens in Slurm
    assert "DRAIN" not in node_state(clean_lab, NODE)[0]
    assert incidents_after(clean_lab, NODE, before) == []


def test_root_drains_and_resumes_through_munge_and_the_ledger_names_root(
    clean_lab: Lab, login_config: Path
) -> None:
    before = newest_incident_id(clean_lab)
    status = as_root(login_config, "status", "--json")
    assert status.returncode == 0, status.stderr
    drained = as_root(login_config, "drain", NODE, "--reason", "it: operators")
    assert drained.returncode == 0, drained.stderr
    wait_for(f"{NODE} drained", lambda: "DRAIN" in node_state(clean_lab, NODE)[0], 30, 0.2)
    resumed = as_root(login_config, "resume", NODE)
    assert resumed.returncode == 0, resumed.stderr
    (incident,) = incidents_after(clean_lab, NODE, before)
    found: Any = api_get(clean_lab, f"/v1/incidents/{incident['id']}")
    assert [a["why"] for a in found["actions"]] == [
        "root (munge uid 0): it: operators",
        "root (munge uid 0): return to service",
    ]
