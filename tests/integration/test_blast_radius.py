"""Bounded power on the lab (issue 11): the drain cap, the breaker and shadow mode,
each set as a site would (a configuration drop-in, the controller restarted). What
was held back is in the ledger; Slurm is left alone; a webhook hears of it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from lab import Lab
from scenario import api_get, controller_with, hpresil, incidents_after, node_state, wait_for

from tests.integration.faultkit import inject_xid79, quiet
from tests.webhook import Webhook


@contextmanager
def _policy(lab: Lab, toml: str) -> Iterator[Webhook]:
    """The controller with ``toml`` added and a webhook, for the block."""
    hook = Webhook()
    try:
        text = f'{toml}\n[jobs]\nwebhook_url = "{hook.url}"\n'
        with controller_with(lab, "50-it-limits.toml", text):
            yield hook
    finally:
        hook.close()


def _drains(lab: Lab, node: str, before: int) -> list[dict[str, Any]]:
    found = incidents_after(lab, node, before)
    if not found:
        return []
    detail: Any = api_get(lab, f"/v1/incidents/{found[0]['id']}")
    return [a for a in detail["actions"] if a["kind"] == "drain"]


def _held_back(lab: Lab, node: str, before: int, by: str) -> dict[str, Any]:
    def held() -> list[dict[str, Any]]:
        return [a for a in _drains(lab, node, before) if a["outcome"] == by]

    found = wait_for(f"{node}'s drain held back ({by})", held, 30, 0.2)
    assert isinstance(found, list)
    time.sleep(2)  # and Slurm is left alone
    assert "DRAIN" not in node_state(lab, node)[0]
    return found[0]


def _drained(lab: Lab, node: str) -> None:
    wait_for(f"{node} drained", lambda: "DRAIN" in node_state(lab, node)[0], 30, 0.2)


def _quiet_category(lab: Lab, category: str, window_s: float) -> None:
    """Wait until no incident of ``category`` is younger than ``window_s``: the
    breaker counts this test's faults only."""
    found: Any = api_get(lab, "/v1/incidents")
    times = [datetime.fromisoformat(i["detected_at"]) for i in found if i["category"] == category]
    if times:
        age = time.time() - max(times).timestamp()
        time.sleep(max(0.0, window_s - age + 0.5))


def test_past_the_cap_a_drain_waits_for_room(clean_lab: Lab) -> None:
    lab = clean_lab
    before = {n: quiet(lab, n) for n in ("node1", "node2")}
    with _policy(lab, "[policy.limits]\nmax_out = 1") as hook:
        inject_xid79(lab, "node1")
        _drained(lab, "node1")
        inject_xid79(lab, "node2")
        held = _held_back(lab, "node2", before["node2"], "capped")
        assert "1 nodes already out because of hpresil, 1 allowed" in held["why"]
        wait_for("the alert", lambda: hook.events, 30, 0.2)
        assert [e["event"] for e in hook.events] == ["drain_capped"]
        hpresil(lab, "resume", "node1")  # room again: the held-back drain is done
        _drained(lab, "node2")
        last = _drains(lab, "node2", before["node2"])[-1]
        assert last["status"] == "done" and last["why"].endswith("the cap has room again")


def test_one_category_on_every_node_trips_the_breaker_once(clean_lab: Lab) -> None:
    """The same fault on 100 % of the lab's nodes: two drained, the third trips the
    breaker, the fourth is held by it; one breaker, one alert."""
    lab = clean_lab
    nodes = ("node1", "node2", "node3")
    before = {n: quiet(lab, n) for n in (*nodes, "node4")}
    toml = "[policy.limits]\nbreaker_nodes = 2\nbreaker_window_s = 60.0"
    _quiet_category(lab, "gpu_lost_pcie", 60.0)
    with _policy(lab, toml) as hook:
        for node in nodes[:2]:
            inject_xid79(lab, node)
            _drained(lab, node)
        inject_xid79(lab, "node3")
        held = _held_back(lab, "node3", before["node3"], "breaker")
        assert "gpu_lost_pcie on 3 nodes within 60 s" in held["why"]
        (breaker,) = json.loads(hpresil(lab, "breaker", "status", "--json"))
        assert breaker["category"] == "gpu_lost_pcie" and breaker["nodes"] == list(nodes)
        inject_xid79(lab, "node4")
        assert (
            "breaker open on gpu_lost_pcie"
            in _held_back(lab, "node4", before["node4"], "breaker")["why"]
        )
        wait_for("the alert", lambda: hook.events, 30, 0.2)
        (alert,) = hook.events
        assert alert["event"] == "breaker_tripped" and alert["nodes"] == list(nodes)
        (breaker,) = json.loads(hpresil(lab, "breaker", "status", "--json"))
        assert breaker["held_back"] == 2
        assert "breaker reset" in hpresil(lab, "breaker", "reset", "gpu_lost_pcie")
        assert json.loads(hpresil(lab, "breaker", "status", "--json")) == []
        for node in ("node3", "node4"):
            hpresil(lab, "drain", node, "--reason", "checked by hand after the breaker")


def test_shadow_mode_records_the_drain_and_leaves_slurm_alone(clean_lab: Lab) -> None:
    lab, node = clean_lab, "node4"
    before = quiet(lab, node)
    with _policy(lab, '[policy]\nmode = "shadow"'):
        inject_xid79(lab, node)
        held = _held_back(lab, node, before, "shadow")
        assert held["status"] == "skipped"
        assert "shadow mode (policy.mode): would drain" in held["why"]
    hpresil(lab, "drain", node, "--reason", "the fault shadow mode recorded")
