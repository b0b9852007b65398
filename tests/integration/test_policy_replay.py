"""Replay on the lab (issue 11): two XID 79 faults taken in by the running controller,
then ``hpresil policy replay`` over its database: the configuration in use shows no
difference; one that lets a single node out shows the second drain removed."""

from __future__ import annotations

import json

from lab import Lab
from scenario import hpresil

from tests.integration.faultkit import drained_once, inject_xid79, quiet


def test_replay_over_the_lab_history_shows_what_a_cap_of_one_would_change(
    clean_lab: Lab,
) -> None:
    lab = clean_lab
    for node in ("node1", "node2"):
        before = quiet(lab, node)
        inject_xid79(lab, node)
        drained_once(lab, node, before)

    def replay(*args: str) -> dict[str, object]:
        found = json.loads(hpresil(lab, "policy", "replay", "--since", "90s", *args, "--json"))
        assert isinstance(found, dict)
        return found

    same = replay()
    assert same["differences"] == [] and same["drained_replayed"] == same["drained_stored"]
    other = lab.root / "etc" / "replay-cap-one.toml"
    text = lab.hpresil_conf.read_text()
    assert "\nmax_out_pct = 100.0" in text
    other.write_text(text.replace("\nmax_out_pct = 100.0", "\nmax_out = 1\nmax_out_pct = 100.0"))
    found = replay("--config", str(other))
    changed = found["differences"]
    assert isinstance(changed, list)
    assert [(d["node"], d["changes"]) for d in changed] == [("node2", ["drain removed"])]
    assert found["kept_in_service"] == ["node2"]
