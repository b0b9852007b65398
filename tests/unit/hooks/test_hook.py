"""The Slurm hook program: fail-closed only on a fresh failing verdict, else fail-open;
its health mode drains its own node through the controller, signed with its key."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.auth import NodeSignature, node_key, request_signature
from hpresil.clock import utcnow
from hpresil.config import Config, ControllerConfig
from hpresil.controller.app import create_app
from hpresil.store import Store
from tests.serve import served
from tests.unit.controller.fakes import FakeBackend

HOOK = Path(__file__).resolve().parents[3] / "slurm-plugins" / "hpresil-hook"
CLUSTER_TOKEN = "c" * 32


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dev").mkdir()
    for i in range(8):
        (tmp_path / "dev" / f"nvidia{i}").touch()
    write_config(tmp_path)
    return tmp_path


def write_config(site: Path, hooks: str = "") -> None:
    (site / "hpresil.toml").write_text(
        f'[agent]\ncache_file = "{site}/{{node}}.verdict.json"\n'
        "[agent.gpu]\nexpected_count = 8\n"
        f'[hooks]\ngpu_devices = "{site}/dev/nvidia[0-9]*"\nmunge_socket = ""\n{hooks}'
    )


def verdict(site: Path, status: str, *, age_s: float = 0.0, summary: str = "") -> Path:
    path = site / "n1.verdict.json"
    results = [{"check": "ecc", "status": status, "summary": summary}]
    path.write_text(json.dumps({"node": "n1", "status": status, "results": results}))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def hook(
    site: Path, mode: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"HPRESIL_CONFIG": str(site / "hpresil.toml"), "SLURMD_NODENAME": "n1"}
    env |= extra_env or {}
    return subprocess.run(
        ["/usr/bin/python3", "-I", "-S", str(HOOK), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_prolog_refuses_a_node_with_a_fresh_failing_verdict(site: Path) -> None:
    verdict(site, "fail", summary="uncorrectable ECC on GPU 5")
    done = hook(site, "prolog")
    assert done.returncode == 1
    assert "uncorrectable ECC on GPU 5" in done.stderr


@pytest.mark.parametrize(("status", "age_s"), [("ok", 0.0), ("warn", 0.0), ("fail", 600.0)])
def test_prolog_lets_jobs_start_unless_fresh_fail(site: Path, status: str, age_s: float) -> None:
    verdict(site, status, age_s=age_s)
    assert hook(site, "prolog").returncode == 0


def test_prolog_fails_open_without_a_verdict_or_with_garbage(site: Path) -> None:
    assert hook(site, "prolog").returncode == 0
    (site / "n1.verdict.json").write_text("{not json")
    assert hook(site, "prolog").returncode == 0


def test_prolog_fails_open_with_an_unreadable_config(site: Path) -> None:
    verdict(site, "fail")
    (site / "hpresil.toml").write_text("[agent\n")  # broken TOML: defaults, no verdict found
    assert hook(site, "prolog").returncode == 0


def test_epilog_never_fails_but_logs(site: Path) -> None:
    verdict(site, "fail", summary="gpu lost")
    done = hook(site, "epilog")
    assert done.returncode == 0 and "gpu lost" in done.stderr


def test_unknown_mode_is_a_usage_error(site: Path) -> None:
    done = hook(site, "bogus")
    assert done.returncode == 2 and "usage" in done.stderr


def test_missing_gpu_device_file_fails_the_prolog(site: Path) -> None:
    (site / "dev" / "nvidia5").unlink()
    done = hook(site, "prolog")
    assert done.returncode == 1 and "7 of 8 GPU device files present" in done.stderr


def test_a_required_mount_that_is_missing_fails(site: Path) -> None:
    write_config(site, f'mounts = ["/", "{site}/not-a-mount"]\n')
    done = hook(site, "check")
    assert done.returncode == 1
    assert f"mount {site}/not-a-mount missing" in done.stdout
    assert "mount / " not in done.stdout  # "/" is a mount point and answers


def test_missing_munge_socket_fails(site: Path) -> None:
    write_config(site, "")
    text = (
        (site / "hpresil.toml")
        .read_text()
        .replace('munge_socket = ""', f'munge_socket = "{site}/munge.socket.2"')
    )
    (site / "hpresil.toml").write_text(text)
    done = hook(site, "check")
    assert done.returncode == 1 and "munge socket" in done.stdout


def test_check_mode_says_ok_on_a_healthy_node(site: Path) -> None:
    verdict(site, "ok")
    done = hook(site, "check")
    assert (done.returncode, done.stdout.strip()) == (0, "ok")


class _Controller(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.seen.append((self.path, self.headers["Authorization"], json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"outcome": "drained", "incident": 1}')

    def log_message(self, *args: object) -> None:
        pass


def _fake_scontrol(site: Path, state: str) -> dict[str, str]:
    bin_dir = site / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "scontrol"
    script.write_text(
        f'#!/bin/sh\ncase "$1 $2" in\n  "-o show") echo "NodeName=n1 State={state}" ;;\n'
        f'  *) echo "$@" >> {site}/scontrol-writes ;;\nesac\n'
    )
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def _with_key(site: Path, url: str, key: str) -> None:
    """The site's config pointing at ``url``, and n1's key file (0600) holding ``key``."""
    key_file = site / "n1.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    write_config(site, f'[controller]\nurl = "{url}"\n')
    text = (site / "hpresil.toml").read_text()
    agent = f'[agent]\nkey_file = "{site}/{{node}}.key"\n'
    (site / "hpresil.toml").write_text(text.replace("[agent]\n", agent, 1))


def test_health_mode_drains_through_the_controller_signed_with_the_nodes_key(
    site: Path,
) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Controller)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    key = node_key(CLUSTER_TOKEN, "n1")
    _with_key(site, f"http://127.0.0.1:{server.server_port}", key)
    verdict(site, "fail", summary="GPU 2: 3 uncorrected ECC errors")
    try:
        done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    finally:
        server.shutdown()
    assert done.returncode == 0
    path, auth, body = _Controller.seen[-1]
    assert path == "/v1/nodes/n1/drain"
    assert body == {"reason": "healthcheck: GPU 2: 3 uncorrected ECC errors"}
    scheme, _, fields = auth.partition(" ")
    signed = NodeSignature.parse(fields)
    raw = json.dumps(body).encode()
    expected = request_signature(key, "POST", path, "n1", signed.ts, signed.nonce, raw)
    assert (scheme, signed.node, signed.sig) == ("HPRESIL-NODE", "n1", expected)
    assert abs(signed.ts - time.time()) < 30
    assert not (site / "scontrol-writes").exists()  # no direct drain


def test_health_mode_leaves_a_drained_node_alone(site: Path) -> None:
    verdict(site, "fail", summary="gpu lost")
    done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE+DRAIN"))
    assert done.returncode == 0
    assert not (site / "scontrol-writes").exists()


def test_a_direct_drain_clips_its_reason_like_the_controller(site: Path) -> None:
    summary = "GPU 2: " + "x" * 300
    write_config(site, '[controller]\nurl = "http://127.0.0.1:9"\n')  # unreachable
    verdict(site, "fail", summary=summary)
    done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    assert done.returncode == 0
    reason = f"hpresil: healthcheck: {summary}"[:100]  # config.REASON_MAX
    written = (site / "scontrol-writes").read_text()
    assert written == f"update nodename=n1 state=drain reason={reason}\n"


def test_the_controllers_drain_request_is_clipped_to_what_it_accepts(site: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Controller)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _with_key(site, f"http://127.0.0.1:{server.server_port}", node_key(CLUSTER_TOKEN, "n1"))
    summary = "GPU 2: " + "x" * 300
    verdict(site, "fail", summary=summary)
    try:
        done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    finally:
        server.shutdown()
    assert done.returncode == 0
    _, _, body = _Controller.seen[-1]
    assert body == {"reason": f"healthcheck: {summary}"[:200]}  # DrainRequest's max_length


def test_without_a_node_key_the_health_hook_drains_directly(site: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Controller)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _with_key(site, f"http://127.0.0.1:{server.server_port}", "unused")
    (site / "n1.key").unlink()
    before = len(_Controller.seen)
    verdict(site, "fail", summary="gpu lost")
    try:
        done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    finally:
        server.shutdown()
    assert done.returncode == 0 and "no node key" in done.stderr
    assert len(_Controller.seen) == before  # nothing sent unsigned
    assert (
        "state=drain reason=hpresil: healthcheck: gpu lost"
        in (site / "scontrol-writes").read_text()
    )


# --- against the real controller (uvicorn, SQLite, the fake Slurm backend) ---
@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend("n1", "n2")


@pytest.fixture
def controller(tmp_path: Path, backend: FakeBackend) -> Iterator[str]:
    """The controller's URL (its clock the real one: the hook signs with time.time())."""
    store = Store.open(f"sqlite:///{tmp_path}/hpresil.db")
    store.migrate()
    slurm = Slurm(backend, prefix="hpresil:", retries=0, backoff_s=0)
    cfg = Config(controller=ControllerConfig(database=f"sqlite:///{tmp_path}/hpresil.db"))
    app = create_app(store=store, slurm=slurm, config=cfg, token=CLUSTER_TOKEN, clock=utcnow)
    try:
        with served(app) as url:
            yield url
    finally:
        store.close()


def incidents(url: str) -> list[dict[str, object]]:
    headers = {"Authorization": f"Bearer {CLUSTER_TOKEN}"}
    found: list[dict[str, object]] = httpx.get(f"{url}/v1/incidents", headers=headers).json()
    return found


def test_the_hook_drains_its_own_node_through_the_controller(
    site: Path, controller: str, backend: FakeBackend
) -> None:
    _with_key(site, controller, node_key(CLUSTER_TOKEN, "n1"))
    verdict(site, "fail", summary="GPU 2: 3 uncorrected ECC errors")
    done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    assert done.returncode == 0 and "drained n1 through the controller" in done.stderr
    assert "DRAIN" in backend.nodes_by_name["n1"].states
    assert "DRAIN" not in backend.nodes_by_name["n2"].states
    (incident,) = incidents(controller)
    assert incident["node"] == "n1"
    assert not (site / "scontrol-writes").exists()


def test_a_key_that_is_not_the_nodes_is_refused_and_the_hook_drains_directly(
    site: Path, controller: str, backend: FakeBackend
) -> None:
    _with_key(site, controller, node_key(CLUSTER_TOKEN, "n2"))  # n2's key on n1
    verdict(site, "fail", summary="gpu lost")
    done = hook(site, "health", extra_env=_fake_scontrol(site, "IDLE"))
    assert done.returncode == 0 and "401" in done.stderr
    assert backend.writes("state") == [] and incidents(controller) == []
    written = (site / "scontrol-writes").read_text()
    assert written == "update nodename=n1 state=drain reason=hpresil: healthcheck: gpu lost\n"
