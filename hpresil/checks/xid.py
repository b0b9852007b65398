"""``xid``: one result per new XID or SXid in the snapshot, judged by the XID table.

FAIL when the action drains, WARN for watch, OK for none. The action is the table's
(:mod:`hpresil.vocab.xids`) refined by what the line says: XID 154 follows the recovery action
it announces and takes the category of the XID it follows on that GPU; XID 45 takes
the category of the root XID it names but keeps its own action (none); a "Nonfatal"
NVLink5 XID is watched; an NVSwitch SXid drains when fatal and is watched otherwise.
Then the site's :class:`~hpresil.config.xid.XidPolicyConfig` may replace the
action or category, and escalate an XID that recurs ``count`` times within
``window_s`` on one GPU (or NVSwitch). ``evidence["why"]`` says how the action came
about.

Recurrence needs memory, and checks are pure over a snapshot: the memory is an
:class:`XidHistory` owned by the check instance, which lives as long as the agent.
It is fed the events' own ``seen_at`` (the agent's injected clock when it read the
line), never the wall clock, so tests drive it with timestamps; recording the same
event twice (a tick retried) counts it once. It was not put in the snapshot because
the snapshot is rebuilt each tick from what is new; and it is not persisted: after
an agent restart counting starts again (an undercount, never a false escalation).

Every GPU (and the node, for XIDs on an unknown PCI id) without a new event gets an
OK "no new XID" result, with no ``xid``. Results naming an XID are events, reported
once; the quiet ones are state: they supersede an earlier event result in the
controller's latest-result-per-(check, GPU) view, so a node's health does not stay
at an old XID's status (the incident it opened keeps the record). An SXid result has
no GPU and carries the SXid number in ``xid`` (SXids are five-digit numbers, XIDs are
below 1000) with ``evidence["kind"] == "sxid"``.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hpresil.config.xid import XidPolicyConfig
from hpresil.kernlog.parse import RECOVERY_XID, ROOT_CAUSED_XID, recovery_action_in
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Status, XidEvent
from hpresil.vocab.snapshot import Snapshot
from hpresil.vocab.xids import RECOVERY_ACTIONS, XidEntry, lookup, lookup_sxid

LINK_WINDOW_S = 600.0  # XID 154 follows the XID it summarises within this long
_NOT_ROOTS = frozenset({ROOT_CAUSED_XID, RECOVERY_XID})  # never what a 154 follows


def status_for(action: Action) -> Status:
    if action.drains:
        return Status.FAIL
    return Status.WARN if action is Action.WATCH else Status.OK


class XidHistory:
    """Recent occurrences per (kind, PCI id, number), on the events' own timestamps.

    Keeps ``keep_s`` of history (and at most ``max_per_key`` occurrences per key, so
    an XID storm cannot grow it without bound). Thread-safe.
    """

    def __init__(self, keep_s: float = LINK_WINDOW_S, max_per_key: int = 1000) -> None:
        self._keep = timedelta(seconds=keep_s)
        self._max = max_per_key
        self._seen: dict[tuple[str, str, int], deque[tuple[datetime, str]]] = {}
        self._last_root: dict[str, XidEvent] = {}  # PCI id -> latest XID that can be a root
        self._lock = threading.Lock()

    def record(self, event: XidEvent) -> None:
        """Remember ``event``; recording the same event again changes nothing."""
        key = (event.kind, event.pci_bus_id, event.xid)
        with self._lock:
            times = self._seen.setdefault(key, deque(maxlen=self._max))
            if (event.seen_at, event.raw) in times:
                return
            times.append((event.seen_at, event.raw))
            while times and times[0][0] < event.seen_at - self._keep:
                times.popleft()
            if event.kind == "xid" and event.xid not in _NOT_ROOTS:
                last = self._last_root.get(event.pci_bus_id)
                if last is None or last.seen_at <= event.seen_at:
                    self._last_root[event.pci_bus_id] = event

    def count(self, event: XidEvent, window_s: float) -> int:
        """Occurrences of ``event``'s number on its device within ``window_s`` up to it."""
        start = event.seen_at - timedelta(seconds=window_s)
        with self._lock:
            times = self._seen.get((event.kind, event.pci_bus_id, event.xid), ())
            return sum(1 for at, _ in times if start < at <= event.seen_at)

    def root_before(self, event: XidEvent, within_s: float = LINK_WINDOW_S) -> XidEvent | None:
        """The latest XID (not 45 or 154) on ``event``'s GPU within ``within_s`` before it."""
        with self._lock:
            last = self._last_root.get(event.pci_bus_id)
        if last is None or not (
            timedelta(0) <= event.seen_at - last.seen_at <= timedelta(seconds=within_s)
        ):
            return None
        return last


@dataclass(frozen=True)
class XidJudgement:
    """What the XID check concluded about one event: its table entry, the action and
    category to report, and why (the table, what the line said, site policy)."""

    entry: XidEntry
    action: Action
    category: Category
    why: str


def judge(event: XidEvent, policy: XidPolicyConfig, history: XidHistory) -> XidJudgement:
    """The action and category for ``event``; records it in ``history``."""
    history.record(event)
    entry = lookup_sxid(event.xid, event.fatal) if event.kind == "sxid" else lookup(event.xid)
    action, category, why = _from_line(event, entry, history)
    override = policy.override(event.kind, event.xid)
    if override is not None:
        if override.action is not None and override.action is not action:
            action = override.action
            why.append(f"site override: {action.value}")
        category = override.category or category
        if override.then is not None and override.count and override.window_s:
            seen = history.count(event, override.window_s)
            if seen >= override.count and override.then.rank > action.rank:
                action = override.then
                why.append(
                    f"{seen} times within {override.window_s:g} s "
                    f"(site escalation at {override.count}): {action.value}"
                )
    return XidJudgement(entry, action, category, "; ".join(why))


def _from_line(
    event: XidEvent, entry: XidEntry, history: XidHistory
) -> tuple[Action, Category, list[str]]:
    action, category = entry.action, entry.category
    why = [f"table: {action.value}"]
    if event.fatal is False and entry.if_nonfatal is not None:
        action = entry.if_nonfatal
        why.append(f"non-fatal: {action.value}")
    if event.kind != "xid":
        return action, category, why
    if event.xid == RECOVERY_XID:
        value = event.recovery_action
        value = recovery_action_in(event.message) if value is None else value
        if value is not None and value in RECOVERY_ACTIONS:
            name, action = RECOVERY_ACTIONS[value]
            why.append(f"recovery action {value} ({name}): {action.value}")
        root = history.root_before(event)
        if root is not None:
            category = lookup(root.xid).category
            why.append(f"follows XID {root.xid}")
    elif event.xid == ROOT_CAUSED_XID and event.root_xid is not None:
        category = lookup(event.root_xid).category
        why.append(f"caused by XID {event.root_xid}; never drains by itself")
    return action, category, why


class XidCheck:
    name = "xid"
    tags = frozenset({"quick", "continuous", "event"})  # event: results are reported once
    interval_s = 0.0  # every tick
    timeout_s = 5.0

    def __init__(
        self, policy: XidPolicyConfig | None = None, history: XidHistory | None = None
    ) -> None:
        self.policy = policy or XidPolicyConfig()
        keep_s = max(self.policy.longest_window_s, LINK_WINDOW_S)
        self.history = history if history is not None else XidHistory(keep_s)

    def supported(self, snapshot: Snapshot) -> bool:
        return True

    def evaluate(self, snapshot: Snapshot) -> list[CheckResult]:
        events = [self._judge(event, snapshot) for event in snapshot.xid_events]
        busy = {r.gpu.index if r.gpu else None for r in events}
        gpus: list[GpuIdentity | None] = [g.identity for g in snapshot.gpus]
        gpus = gpus or list(snapshot.known_gpus)
        quiet = [
            self._quiet(gpu, snapshot)
            for gpu in [*gpus, None]
            if (gpu.index if gpu else None) not in busy
        ]
        return events + quiet

    def _quiet(self, gpu: GpuIdentity | None, snapshot: Snapshot) -> CheckResult:
        where = f"GPU {gpu.index} ({gpu.pci_bus_id})" if gpu else "other PCI ids"
        return CheckResult(
            check=self.name,
            status=Status.OK,
            summary=f"no new XID on {where}",
            gpu=gpu,
            observed_at=snapshot.taken_at,
        )

    def _judge(self, event: XidEvent, snapshot: Snapshot) -> CheckResult:
        judged = judge(event, self.policy, self.history)
        gpu = None if event.kind == "sxid" else _identity(event, snapshot)
        return CheckResult(
            check=self.name,
            status=status_for(judged.action),
            action=judged.action,
            category=judged.category,
            summary=summary(event, judged.entry, gpu)[:500],
            gpu=gpu,
            xid=event.xid,
            evidence=_evidence(event, judged),
            observed_at=event.seen_at,
        )


def _identity(event: XidEvent, snapshot: Snapshot) -> GpuIdentity | None:
    """The GPU from NVML (this or the last good query), completed from the kernel log."""
    gpu = snapshot.gpu_identity(event.pci_bus_id)
    if gpu is None:
        return None
    update = {"uuid": event.gpu_uuid, "serial": event.gpu_serial}
    missing = {k: v for k, v in update.items() if v and getattr(gpu, k) is None}
    return gpu.model_copy(update=missing) if missing else gpu


def summary(event: XidEvent, entry: XidEntry, gpu: GpuIdentity | None) -> str:
    """``XID 79 GPU has fallen off the bus on GPU 3 (0000:5d:00)``, or for an SXid
    ``SXid 20034 (fatal) on NVSwitch 1 (0000:06:00): Fatal, Link 48 LTSSM Fault Up``."""
    if event.kind == "sxid":
        severity = {True: "fatal", False: "non-fatal", None: "severity not stated"}[event.fatal]
        where = f"NVSwitch {event.switch} ({event.pci_bus_id})"
        return f"SXid {event.xid} ({severity}) on {where}: {event.message}"
    where = f"GPU {gpu.index} ({event.pci_bus_id})" if gpu else f"GPU {event.pci_bus_id}"
    if event.gpu_instance is not None:
        where += f" GPU-I {event.gpu_instance}"
        if event.compute_instance is not None:
            where += f" GPU-CI {event.compute_instance}"
    text = f"XID {event.xid} {entry.name} on {where}"
    if event.message and _norm(event.message) != _norm(entry.name):
        text += f": {event.message}"
    return text


def _evidence(event: XidEvent, judged: XidJudgement) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "raw": event.raw,
        "kind": event.kind,
        "pci_bus_id": event.pci_bus_id,
        "pid": event.pid,
        "process": event.process,
        "message": event.message,
        "table": judged.entry.source,
        "why": judged.why,
    }
    optional = event.model_dump(
        include={
            "gpu_instance",
            "compute_instance",
            "switch",
            "fatal",
            "recovery_action",
            "root_xid",
            "gpu_uuid",
            "gpu_serial",
        },
        exclude_none=True,
    )
    return evidence | optional


def _norm(text: str) -> str:
    return text.strip().rstrip(".").lower()
