"""Parse Slurm's JSON output: the 22.05 shapes (openapi v0.0.38) and the newer ones.

22.05 ``sinfo --json``: ``{"nodes": [{"name", "state": "idle", "state_flags": ["DRAIN"],
"reason", "reason_set_by_user", "reason_changed_at": <epoch>}]}``.
23.11+ ``sinfo -N --json``: ``{"sinfo": [{"nodes": {"nodes": [names]}, "node": {"state":
["IDLE", "DRAIN"]}, "reason": ...}]}`` (one entry per node and partition; ``reason`` a
string or an object with ``description``/``user``/``time``).
Jobs: ``job_state`` a string (22.05) or a list (newer); times an epoch (22.05) or
``{"set": bool, "infinite": bool, "number": epoch}`` (newer).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hpresil.adapters.slurm.hostlist import expand
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.errors import SlurmParseError


def load(text: str, what: str) -> dict[str, Any]:
    """The JSON object ``what`` printed; one that reports errors is refused."""
    data = json_object(text, what)
    error = reported_error(data)
    if error is not None:
        raise SlurmParseError(f"{what}: slurm reported {error}")
    return data


def json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SlurmParseError(f"{what}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SlurmParseError(f"{what}: expected a JSON object")
    return data


def reported_error(data: dict[str, Any]) -> str | None:
    """The first entry of the output's ``errors`` array, in words, or None.

    22.05 prints ``{"error": "Unspecified error", "errno": -1}`` (sinfo) or adds
    ``"source"`` and ``"description"`` (squeue) when slurmctld cannot be reached;
    its ``nodes``/``jobs`` list is then empty, not the cluster's."""
    errors = data.get("errors")
    found = [e for e in errors if e] if isinstance(errors, list) else []
    if not found:
        return None
    first = found[0]
    if not isinstance(first, dict):
        return str(first)
    words = [str(first[k]) for k in ("source", "description", "error") if first.get(k)]
    return ": ".join(words) or json.dumps(first)


def nodes(data: dict[str, Any]) -> list[SlurmNode]:
    try:
        if "nodes" in data:
            return [_node_v38(n) for n in data["nodes"]]
        if "sinfo" in data:
            return _dedupe(_nodes_sinfo(data["sinfo"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise SlurmParseError(f"sinfo: unexpected node record: {exc!r}") from None
    raise SlurmParseError("sinfo: neither 'nodes' nor 'sinfo' in the output")


def jobs(data: dict[str, Any]) -> list[SlurmJob]:
    try:
        return [_job(j) for j in data["jobs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise SlurmParseError(f"squeue: unexpected job record: {exc!r}") from None


_NAME = re.compile(r"^NodeName=(\S+)")
_STATE = re.compile(r"\sState=(\S+)")
_REASON = re.compile(r"\sReason=(.*?)(?: \[([^@\]]*)@([^\]]*)\])?$")
_BOOT = re.compile(r"\sBootTime=(\S+)")


def node_line(text: str, name: str) -> SlurmNode | None:
    """``name`` from ``scontrol show node -o NAME`` (one line per node; the reason
    last, as ``Reason=<text> [<user>@<local time>]``); None when it is not there."""
    for line in text.splitlines():
        found = _NAME.match(line)
        if found is None or found.group(1) != name:
            continue
        state = _STATE.search(line)
        if state is None:
            raise SlurmParseError(f"scontrol show node {name}: no State= in {line[:200]!r}")
        reason = _REASON.search(line)
        text_, user, when = reason.groups() if reason else (None, None, None)
        boot = _BOOT.search(line)
        return SlurmNode(
            name=name,
            states=frozenset(_states(state.group(1))),
            reason=text_ or None,
            reason_set_by=user or None,
            reason_time=_local_time(when),
            boot_time=_local_time(boot.group(1)) if boot else None,
        )
    return None


def _local_time(text: str | None) -> datetime | None:
    """A time ``scontrol`` prints (the controller host's local time, no zone)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _node_v38(n: dict[str, Any]) -> SlurmNode:
    states = _states(n["state"]) | _states(n.get("state_flags") or [])
    return SlurmNode(
        name=n["name"],
        states=frozenset(states),
        reason=n.get("reason") or None,
        reason_set_by=n.get("reason_set_by_user") or None,
        reason_time=_time(n.get("reason_changed_at")),
        boot_time=_time(n.get("boot_time")),
    )


def _nodes_sinfo(entries: Iterable[dict[str, Any]]) -> Iterable[SlurmNode]:
    for e in entries:
        reason, user, when = _reason(e.get("reason"))
        for name in e["nodes"]["nodes"]:
            yield SlurmNode(
                name=name,
                states=frozenset(_states(e["node"]["state"])),
                reason=reason,
                reason_set_by=user,
                reason_time=when,
            )


def _reason(value: Any) -> tuple[str | None, str | None, datetime | None]:
    if isinstance(value, dict):
        return (
            value.get("description") or None,
            value.get("user") or None,
            _time(value.get("time")),
        )
    return (value or None, None, None)


def _dedupe(items: Iterable[SlurmNode]) -> list[SlurmNode]:
    seen: dict[str, SlurmNode] = {}
    for node in items:
        seen.setdefault(node.name, node)
    return list(seen.values())


def _job(j: dict[str, Any]) -> SlurmJob:
    state = j["job_state"]
    state = state[0] if isinstance(state, list) else state
    submit = _time(j.get("submit_time"))
    if submit is None:
        raise ValueError(f"job {j.get('job_id')} has no submit_time")
    return SlurmJob(
        job_id=int(j["job_id"]),
        name=str(j.get("name") or ""),
        user=str(j.get("user_name") or ""),
        state=str(state).upper(),
        nodes=tuple(expand(j.get("nodes") or "")),
        requeue=bool(j.get("requeue")),
        restart_count=int(_number(j.get("restart_cnt")) or 0),
        submit_time=submit,
        start_time=_time(j.get("start_time")),
        batch_host=j.get("batch_host") or None,
        comment=str(j.get("comment") or ""),
        reason="" if j.get("state_reason") in (None, "None") else str(j["state_reason"]),
        excluded=tuple(expand(j.get("excluded_nodes") or "")),
    )


def _states(value: Any) -> set[str]:
    if isinstance(value, str):
        return {s for s in value.upper().replace("+", " ").split() if s}
    return {str(s).upper() for s in value}


def _number(value: Any) -> int | float | None:
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        number: int | float | None = value.get("number")
        return number
    return value  # type: ignore[no-any-return]


def _time(value: Any) -> datetime | None:
    n = _number(value)
    if not n:
        return None
    return datetime.fromtimestamp(int(n), tz=UTC)
