"""Each node speaks only for itself, on the lab (issue 11): node3's own key, from the
file its agent reads, cannot drain node2, report for it, resume itself or reset a
breaker; a report node2 signed cannot be sent twice. Each is refused with its code,
nothing is stored, and node2 stays in service."""

from __future__ import annotations

import secrets
import time

import httpx
from lab import Lab
from scenario import incidents_after, newest_incident_id, node_state

from hpresil.auth import NodeKey, read_node_key
from tests.unit.controller.fakes import report, xid79


def key_of(lab: Lab, node: str) -> NodeKey:
    key = read_node_key(lab.root / "etc" / "keys" / f"{node}.key")
    assert key is not None
    return NodeKey(node, key)


def post(client: httpx.Client, key: NodeKey, path: str, body: bytes) -> httpx.Response:
    auth = key.authorization("POST", path, body)
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    return client.post(path, content=body, headers=headers)


def xid_report(node: str) -> bytes:
    rid = f"it-{secrets.token_hex(8)}"
    return report(node, xid79(), report_id=rid, seq=999_999).model_dump_json().encode()


def test_a_node_key_speaks_only_for_its_node(clean_lab: Lab) -> None:
    lab = clean_lab
    before = newest_incident_id(lab)
    node2, node3 = key_of(lab, "node2"), key_of(lab, "node3")
    url = f"http://127.0.0.1:{lab.controller_port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        drain = post(client, node3, "/v1/nodes/node2/drain", b'{"reason": "it"}')
        assert drain.status_code == 403, drain.text
        assert "node3" in drain.json()["detail"]
        assert post(client, node3, "/v1/reports", xid_report("node2")).status_code == 403
        assert post(client, node3, "/v1/nodes/node3/resume", b"").status_code == 403
        reset = post(client, node3, "/v1/breakers/gpu_lost_pcie/reset", b"")
        assert reset.status_code == 403

        healthy = report("node2", report_id=f"it-{secrets.token_hex(8)}").model_dump_json()
        body = healthy.encode()
        auth = node2.authorization("POST", "/v1/reports", body)
        headers = {"Authorization": auth, "Content-Type": "application/json"}
        assert client.post("/v1/reports", content=body, headers=headers).status_code == 200
        again = client.post("/v1/reports", content=body, headers=headers)
        assert again.status_code == 401 and "replayed" in again.json()["detail"]
    time.sleep(2)  # and nothing happens in Slurm
    assert "DRAIN" not in node_state(lab, "node2")[0]
    assert incidents_after(lab, "node2", before) == []
