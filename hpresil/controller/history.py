"""What the policy weighs of a node's past (:mod:`hpresil.controller.policy`), read in
the report's transaction: earlier incidents like each fault in the report
(escalation on recurrence) and the strikes on its GPUs and node (the lemon rule,
``policy.replace_after``), within ``policy.recurrence_window_days``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from hpresil.config import PolicyConfig
from hpresil.controller import policy
from hpresil.store import repo
from hpresil.store.models import IncidentRow
from hpresil.vocab import CheckResult, Report


def weighed(
    s: Session, report: Report, current: IncidentRow | None, now: datetime, cfg: PolicyConfig
) -> policy.History:
    """The history ``report``'s faults are judged with; ``current`` (the node's open
    incident) is not counted."""
    node = report.node
    since = now - timedelta(days=cfg.recurrence_window_days)
    faults = [r for r in report.results if r.is_fault]
    recurring, lemons = cfg.escalate_on_recurrence, cfg.replace_after > 0
    return policy.History(
        recurrences=_recurrences(s, node, faults, current, since) if recurring else {},
        strikes=_strikes(s, node, faults, current, since) if lemons else None,
    )


def _recurrences(
    s: Session,
    node: str,
    faults: Sequence[CheckResult],
    current: IncidentRow | None,
    since: datetime,
) -> dict[policy.RecurrenceKey, int]:
    """Earlier incidents like each fault (:func:`policy.recurrence_key`)."""
    counts: dict[policy.RecurrenceKey, int] = {}
    for fault in faults:
        key = policy.recurrence_key(node, fault)
        if key not in counts:
            counts[key] = repo.earlier_incidents(
                s,
                category=key[0],
                node=node,
                gpu=fault.gpu,
                since=since,
                exclude=current.id if current else None,
            )
    return counts


def _strikes(
    s: Session,
    node: str,
    faults: Sequence[CheckResult],
    current: IncidentRow | None,
    since: datetime,
) -> policy.Strikes | None:
    """The lemon rule's strikes before this report, on the node and on each GPU with a
    hardware fault; None when there is no hardware fault, or when the faults join an
    incident put down to a shared component (no strike of the node's)."""
    hardware = [f for f in faults if policy.category_of(f).is_hardware]
    if not hardware or (current is not None and current.shared_id is not None):
        return None
    exclude = current.id if current else None
    gpus: dict[str, int] = {}
    for fault in hardware:
        key = policy.gpu_key(node, fault.gpu) if fault.gpu is not None else None
        if key is not None and key not in gpus:
            gpus[key] = repo.hardware_incidents(
                s, node=node, gpu=fault.gpu, since=since, exclude=exclude
            )
    on_node = repo.hardware_incidents(s, node=node, gpu=None, since=since, exclude=exclude)
    return policy.Strikes(node=on_node, gpus=gpus)
