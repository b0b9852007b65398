"""Slurm itself failing under the controller, and GPU-state faults from NVML's side."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from lab import Lab
from scenario import api_get, dropin_path, hpresil, node_state, wait_for


def _incident_for(lab: Lab, node: str) -> dict[str, Any] | None:
    found: Any = api_get(lab, f"/v1/incidents?status=open&node={node}")
    return found[0] if found else None


def _drain_action(lab: Lab, incident_id: int) -> dict[str, Any] | None:
    detail: Any = api_get(lab, f"/v1/incidents/{incident_id}")
    return next((a for a in detail["actions"] if a["kind"] == "drain"), None)


def test_slurm_down_drain_is_retried_and_done_when_slurm_returns(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node4"
    fast = dropin_path(lab, "50-fast-slurm-timeouts.toml")
    fast.write_text("[slurm]\ntimeout_s = 2.0\nretries = 0\n")
    try:
        lab.stop_process("controller")
        lab.start_controller()
        lab.stop_process("slurmctld")
        hpresil(lab, "inject", "xid", "79", "--gpu", "2", "--node", node, env=lab.node_env(node))
        incident = wait_for("the incident", lambda: _incident_for(lab, node), 15, 0.2)
        assert isinstance(incident, dict)

        def failed_attempt() -> bool:
            action = _drain_action(lab, incident["id"])
            return bool(action and action["attempts"] >= 1 and action["status"] == "pending")

        wait_for("a failed drain attempt, still pending", failed_attempt, 30, 0.5)
        action = _drain_action(lab, incident["id"])
        assert action is not None and "timed out" in (action["error"] or "")
        url = f"http://127.0.0.1:{lab.controller_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as resp:  # the daemon stayed up
            assert json.loads(resp.read()) == {"ok": True, "leader": True}

        lab.up()  # slurmctld back, state recovered from its save location
        wait_for("the retried drain", lambda: "DRAIN" in node_state(lab, node)[0], 60, 0.5)
        done = wait_for(
            "the action marked done",
            lambda: (_drain_action(lab, incident["id"]) or {}).get("status") == "done",
            30,
            0.5,
        )
        assert done
        assert node_state(lab, node)[1].startswith(f"hpresil: #{incident['id']}")
    finally:
        fast.unlink(missing_ok=True)
        lab.up()
        lab.stop_process("controller")
        lab.start_controller()


def test_uncorrectable_ecc_from_the_gpu_drains_the_node(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node1"
    lab.inject_gpu(node, 5, ecc_volatile_uncorrected_dram=2, ecc_aggregate_uncorrected_dram=2)
    incident = wait_for("the incident", lambda: _incident_for(lab, node), 20, 0.2)
    assert isinstance(incident, dict)
    assert incident["category"] == "hbm_ecc" and incident["xid"] is None
    assert incident["gpu"]["index"] == 5 and incident["action"] == "reset_gpu"
    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], 10, 0.2)
    assert node_state(lab, node)[1].startswith("hpresil:")


def test_health_hook_drains_a_failing_node_while_the_controller_is_down(clean_lab: Lab) -> None:
    """The second line of defence: Slurm's HealthCheckProgram reads the agent's verdict."""
    lab, node = clean_lab, "node2"
    lab.stop_process("controller")
    lab.inject_gpu(node, 4, ecc_volatile_uncorrected_dram=1, ecc_aggregate_uncorrected_dram=1)
    # HealthCheckInterval=10 in the lab: one or two rounds.
    wait_for("the health hook's drain", lambda: "DRAIN" in node_state(lab, node)[0], 40, 0.5)
    reason = node_state(lab, node)[1]
    assert reason.startswith("hpresil: healthcheck:") and "GPU 4" in reason
