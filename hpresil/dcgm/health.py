"""``dcgmi health -c -j`` output to a :class:`~hpresil.dcgm.model.HealthReport`.

Shape (DCGM's ``dcgmi/Health.cpp`` and ``DcgmiOutput``; the one recorded sample is
a healthy node, tests/fixtures/dcgm): every node of the output tree is
``{"value": ..., "overflow": [...], "children": {...}}``::

    {"header": ["Health Monitor Report"],
     "body": {"Overall Health": {"value": "Healthy" | "Warning" | "Failure"},
              "GPU": {"children": {"1": {"value": "Failure", "children": {"Errors":
                  {"children": {"Memory system": {"value": "Failure",
                                                  "overflow": ["<message, in pieces>"]}}}}}}}}}

Entity groups other than GPU (``Switch``, ``CPU``, ``ConnectX``, ...) have the same
layout. dcgmi cuts a long message into pieces of at most 54 characters at word
boundaries; they are joined back with spaces.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hpresil.dcgm import mapping
from hpresil.dcgm.model import HealthIncident, HealthReport
from hpresil.dcgm.parse import DcgmParseError, documents
from hpresil.vocab import Action, Status

OVERALL_KEY = "Overall Health"
_LEVELS = {"healthy": "healthy", "warning": "warning", "failure": "failure"}


def parse_health(text: str) -> HealthReport:
    """Read the stdout of ``dcgmi health -c -j``; :class:`DcgmParseError` when it holds
    no health report."""
    doc = next((d for d in documents(text) if isinstance(d.get("body"), dict)), None)
    if doc is None or not isinstance(doc["body"].get(OVERALL_KEY), dict):
        first = text.strip().splitlines()[0][:120] if text.strip() else "empty"
        raise DcgmParseError(f"no DCGM health report in the output ({first!r})")
    body: dict[str, Any] = doc["body"]
    overall = str(body[OVERALL_KEY].get("value", ""))
    incidents = [
        incident
        for group, node in body.items()
        if group != OVERALL_KEY and isinstance(node, dict)
        for incident in _group(group, node)
    ]
    return HealthReport(
        overall=_LEVELS.get(overall.strip().lower(), "unknown"), incidents=tuple(incidents)
    )


def _group(group: str, node: Mapping[str, Any]) -> Iterator[HealthIncident]:
    for entity_id, entity in _children(node).items():
        systems = _children(_children(entity).get("Errors", {}))
        if not systems:  # an entity that is not healthy but names no subsystem
            health = str(_dict(entity).get("value", ""))
            if health.strip().lower() != "healthy":
                yield _incident(group, entity_id, "unknown system", health, "")
            continue
        for system, detail in systems.items():
            detail = _dict(detail)
            message = " ".join(str(x).strip() for x in detail.get("overflow", []) if x)
            yield _incident(group, entity_id, system, str(detail.get("value", "")), message)


def _incident(group: str, entity_id: str, system: str, health: str, message: str) -> HealthIncident:
    word = health.strip().lower()
    category = mapping.health_category(system)
    if word in ("warning", "failure"):
        action = mapping.health_action(category, failed=word == "failure")
        status = mapping.status_for(action)
    else:  # "Internal error", or a word this parser does not know
        action, status = Action.NONE, Status.UNKNOWN
    gpu = int(entity_id) if group == "GPU" and entity_id.isdigit() else None
    return HealthIncident(
        entity_group=group,
        entity_id=entity_id,
        gpu=gpu,
        system=system,
        health=health,
        message=message[:1000],
        status=status,
        category=category,
        action=action,
    )


def _children(node: Any) -> dict[str, Any]:
    children = _dict(node).get("children")
    return children if isinstance(children, dict) else {}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
