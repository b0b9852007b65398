"""Faults that share a component, on the lab (issue 11). The lab's slurmctld runs
``topology/tree`` (scripts/lab.py: leaf1 over node1 and node2, leaf2 over node3 and
node4, a spine above): InfiniBand going down on both nodes of leaf1 is the switch's
fault. One shared incident names it, a webhook hears of it once, both nodes are
drained with the switch in the reason, and neither node's MTTF counts it."""

from __future__ import annotations

import json
from typing import Any

from lab import Lab
from scenario import api_get, controller_with, hpresil, newest_incident_id, node_state, wait_for

from tests.webhook import Webhook

LEAF1 = ("node1", "node2")


def _failures(lab: Lab) -> dict[str, int]:
    view: Any = api_get(lab, "/v1/stats/mttf?by=node")
    return {row["key"]: row["failures"] for row in view["rows"]}


def _leaf1_fault(lab: Lab, before: int) -> Any:
    faults: Any = api_get(lab, "/v1/shared-faults?status=open")
    found = [f for f in faults if f["component"] == "leaf1" and min(f["incidents"]) > before]
    return found[0] if found and found[0]["nodes"] == list(LEAF1) else None


def test_a_leaf_switch_failing_is_one_incident_on_the_switch(clean_lab: Lab) -> None:
    lab = clean_lab
    hook = Webhook()
    try:
        with controller_with(lab, "50-it-shared.toml", f'[jobs]\nwebhook_url = "{hook.url}"\n'):
            before, failures = newest_incident_id(lab), _failures(lab)
            for node in LEAF1:
                lab.inject_ib(node, "mlx5_3/1", up=False)
            fault = wait_for("one incident on switch leaf1", lambda: _leaf1_fault(lab, before), 30)
            assert isinstance(fault, dict)
            assert (fault["kind"], fault["category"], fault["size"]) == ("switch", "ib_network", 2)
            for node in LEAF1:
                wait_for(f"{node} drained", lambda n=node: "DRAIN" in node_state(lab, n)[0], 30)
            # the later of the two faults found the switch before its drain ran
            later: Any = api_get(lab, f"/v1/incidents/{max(fault['incidents'])}")
            assert node_state(lab, later["node"])[1].endswith("ib_network switch leaf1")
            assert _failures(lab) == failures  # neither node's MTTF counts the switch

            shown = json.loads(hpresil(lab, "incidents", "--status", "open", "--json"))
            ours = [i for i in shown if i["id"] in fault["incidents"]]
            assert [i["shared"]["component"] for i in ours] == ["leaf1", "leaf1"]
            wide = {**lab.env, "COLUMNS": "200"}
            listing = hpresil(lab, "incidents", "--shared", "--status", "open", env=wide)
            assert "switch leaf1" in listing and "node1,node2" in listing
            wait_for("the webhook", lambda: hook.events, 15)
            assert [(e["event"], e["component"]) for e in hook.events] == [
                ("shared_fault", "leaf1")
            ]
    finally:
        hook.close()
