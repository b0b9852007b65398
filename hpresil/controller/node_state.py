"""A node's stored state: its latest result per (check, GPU), as agents sent them.

A state report replaces every stored result of each check it carries (a per-GPU FAIL
the check no longer reports goes); checks it does not carry keep theirs. At most
``limit`` results are kept per node, faults and then the report's own first. What
changed is worked out on the way, so that only changes are stored as history: a
result changed when it is new or says something else (its time aside); an event's (an XID)
is news every time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpresil.store.models import NodeRow
from hpresil.vocab import Health, Report, Status

log = logging.getLogger(__name__)

ResultKey = tuple[str, int]
RETENTION_PRIORITY = {Status.FAIL.value: 0, Status.WARN.value: 1, Status.UNKNOWN.value: 2}
"""Which stored results a node over its limit keeps first: lower first, any other
status 3. A retention priority, not the severity order (:attr:`Status.rank`, in which
UNKNOWN is worse than WARN: a doubt about a node weighs more than a warning when
judging it). What is kept is what an operator reads next: a WARN is something the
check found on the node, an UNKNOWN only says a check could not run, so under the cap
the WARN is kept first."""


@dataclass(frozen=True)
class Merged:
    results: list[dict[str, Any]]
    changed: list[dict[str, Any]]  # the new results that say something new
    dropped: int  # over the limit


def note_state(
    node: NodeRow, results: Mapping[ResultKey, dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Merge a state report's ``results`` into ``node``'s; the ones that changed."""
    if not results:
        return []
    merged = merge_results(node.last_results or [], results, limit)
    node.last_results = merged.results
    node.worst = listed_health(r.get("status") for r in merged.results).value
    if merged.dropped:
        log.warning(
            "%s: %d result(s) not kept: over the limit of %d per node",
            node.name,
            merged.dropped,
            limit,
        )
    return merged.changed


def merge_results(
    stored: Iterable[Any], new: Mapping[ResultKey, dict[str, Any]], limit: int
) -> Merged:
    """The stored results with every check in ``new`` replaced by its results there;
    at most ``limit`` of them (faults first, then ``new``'s)."""
    checks = {check for check, _ in new}
    keyed = [(_stored_key(d), d) for d in stored if isinstance(d, dict)]
    before = {k: d for k, d in keyed if k is not None}
    old = {k: d for k, d in before.items() if k[0] not in checks}
    ranked = sorted([*_ranked(new, 0), *_ranked(old, 1)])
    kept = {key: result for *_, key, result in ranked[:limit]}
    changed = [d for k, d in new.items() if _news(before.get(k), d)]
    return Merged([kept[k] for k in sorted(kept)], changed, len(ranked) - len(kept))


def listed_health(statuses: Iterable[object]) -> Health:
    """How the node list weighs a node's results: FAIL if one failed, else WARN if one
    warned, else OK (a check that could not run is not a finding)."""
    seen = set(statuses)
    if Status.FAIL.value in seen:
        return Health.FAIL
    return Health.WARN if Status.WARN.value in seen else Health.OK


def is_late(last_seq: int | None, seq: int) -> bool:
    """Whether a report of ``seq`` comes from the agent's spool behind one already
    taken in (``last_seq``: the node's); ``seq`` 0 is not the spool's (the CLI's
    burn-in) and is never late."""
    return 0 < seq < (last_seq or 0)


def taken_already(last_seq: int | None, seq: int) -> bool:
    """Whether a report of ``seq`` is the node's last one, sent again (its answer was
    lost); never one of ``seq`` 0."""
    return 0 < seq == (last_seq or 0)


def wants_state(report: Report, held: str | None, late: bool) -> bool:
    """Whether to ask for the agent's state: a heartbeat in order whose digest is not
    the one the controller ``held``."""
    return report.heartbeat and not late and report.digest != held


def noted(node: NodeRow, seq: int, gpus: int, now: datetime) -> None:
    """The node reported (``seq``, not late; ``gpus``: how many, 0 when not said)."""
    node.last_report_at = now
    node.last_seq = seq
    if gpus:
        node.gpus = gpus


def _news(before: Mapping[str, Any] | None, result: Mapping[str, Any]) -> bool:
    """Whether ``result`` says something ``before`` (the stored one) did not: its time
    aside; an event (an XID) always does."""
    if before is None or result.get("xid") is not None:
        return True
    return any(before.get(k) != v for k, v in result.items() if k != "observed_at") or any(
        k not in result for k in before
    )


def _ranked(
    results: Mapping[ResultKey, dict[str, Any]], age: int
) -> Iterable[tuple[int, int, ResultKey, dict[str, Any]]]:
    """Sort keys: faults first, then the newer report's, then by (check, GPU)."""
    for key, result in results.items():
        status = result.get("status")
        priority = RETENTION_PRIORITY.get(status, 3) if isinstance(status, str) else 3
        yield (priority, age, key, result)


def _stored_key(stored: dict[str, Any]) -> ResultKey | None:
    """The (check, GPU index) of a stored result, or None for one unreadable."""
    check, gpu = stored.get("check"), stored.get("gpu")
    index = gpu.get("index") if isinstance(gpu, dict) else -1
    if not isinstance(check, str) or not isinstance(index, int):
        return None
    return (check, index)
