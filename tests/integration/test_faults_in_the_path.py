"""Bad input and faults along the path: controller down, malformed reports, admin drains."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from lab import Lab
from scenario import hpresil, hpresil_json, node_state, wait_for


def _open_incidents(lab: Lab, node: str) -> list[Any]:
    found: Any = hpresil_json(lab, "incidents", "--status", "open", "--node", node)
    return list(found)


def test_controller_down_agent_spools_then_delivers_exactly_once(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node2"
    lab.stop_process("controller")
    hpresil(lab, "inject", "xid", "48", "--gpu", "1", "--node", node, env=lab.node_env(node))
    spool = lab.root / "spool" / node
    wait_for("the agent to spool reports", lambda: any(spool.glob("*.json")), 10, 0.2)
    time.sleep(2)  # several delivery attempts fail meanwhile
    assert "DRAIN" not in node_state(lab, node)[0]

    lab.start_controller()
    wait_for("the spooled fault to arrive", lambda: _open_incidents(lab, node), 30, 0.5)
    wait_for("the spool to drain", lambda: not any(spool.glob("*.json")), 30, 0.5)
    (incident,) = _open_incidents(lab, node)
    assert incident["xid"] == 48 and incident["category"] == "hbm_ecc"
    assert incident["findings"] == 1  # delivered once, not once per retry
    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 10)


def test_malformed_report_is_refused_and_controller_keeps_running(clean_lab: Lab) -> None:
    lab = clean_lab
    token = (lab.root / "etc" / "token").read_text().strip()
    url = f"http://127.0.0.1:{lab.controller_port}"
    bodies = [
        b"{not json",
        json.dumps({"node": "node1"}).encode(),
        json.dumps(
            {
                "report_id": "x" * 10,
                "node": "node1",
                "seq": 0,
                "sent_at": "2026-11-22T00:00:00Z",
                "results": [
                    {"check": "xid", "status": "exploded", "observed_at": "2026-11-22T00:00:00Z"}
                ],
            }
        ).encode(),
    ]
    for body in bodies:
        req = urllib.request.Request(
            f"{url}/v1/reports",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("malformed report accepted")
        except urllib.error.HTTPError as err:
            assert 400 <= err.code < 500
            detail = json.loads(err.read())["detail"]
            assert isinstance(detail, str) and "\n" not in detail
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"ok": True, "leader": True}  # alone, it leads
    assert _open_incidents(lab, "node1") == []


def test_admin_drain_is_never_overwritten_or_resumed(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node3"
    lab.slurm(["scontrol", "update", f"nodename={node}", "state=drain", "reason=admin: PSU swap"])
    hpresil(lab, "inject", "xid", "79", "--gpu", "0", "--node", node, env=lab.node_env(node))
    wait_for("the incident", lambda: _open_incidents(lab, node), 15, 0.2)
    time.sleep(1)
    assert node_state(lab, node)[1] == "admin: PSU swap"
    (incident,) = _open_incidents(lab, node)
    detail: Any = hpresil_json(lab, "incidents", str(incident["id"]))
    drains = [a for a in detail["actions"] if a["kind"] == "drain"]
    assert drains and drains[0]["outcome"] == "foreign"
    proc = __import__("subprocess").run(
        [*lab.hpresil_argv(), "resume", node], env=lab.env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "someone else" in proc.stderr
    assert node_state(lab, node)[1] == "admin: PSU swap"


def test_cli_bad_config_is_one_line_exit_2(lab: Lab, tmp_path: Any) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent.kernel_log]\nsource = 'serial'\n")
    proc = __import__("subprocess").run(
        [*lab.hpresil_argv()[:1], "--config", str(bad), "agent", "--node", "node1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "agent.kernel_log.source" in proc.stderr
