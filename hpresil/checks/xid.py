"""``xid``: one result per new XID in the snapshot, judged by the XID table.

FAIL when the table's action drains, WARN for watch, OK for none. XID 154 ("GPU
recovery action changed") follows the new value the driver announces.

Every GPU (and the node, for XIDs on an unknown PCI id) without a new XID gets an
OK "no new XID" result, with no ``xid``. Results naming an XID are events, reported
once; the quiet ones are state: they supersede an earlier event result in the
controller's latest-result-per-(check, GPU) view, so a node's health does not stay
at an old XID's status (the incident it opened keeps the record).
"""

from __future__ import annotations

import re

from hpresil.agent.snapshot import Snapshot
from hpresil.checks.xid_table import XidEntry, lookup
from hpresil.vocab import Action, CheckResult, GpuIdentity, Status, XidEvent

# "GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)"
_RECOVERY_RE = re.compile(
    r"recovery action changed from \S+(?: \([^)]*\))? to (0x[0-9a-fA-F]+|\d+)"
)
_RECOVERY_ACTIONS = {
    0: Action.NONE,
    1: Action.RESET_GPU,
    2: Action.REBOOT,
    3: Action.DRAIN,
    4: Action.RESET_GPU,
}


def status_for(action: Action) -> Status:
    if action.drains:
        return Status.FAIL
    return Status.WARN if action is Action.WATCH else Status.OK


class XidCheck:
    name = "xid"
    tags = frozenset({"quick", "continuous", "event"})  # event: results are reported once
    interval_s = 0.0  # every tick
    timeout_s = 5.0

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
        entry = lookup(event.xid)
        action = _action(entry, event)
        gpu = snapshot.gpu_identity(event.pci_bus_id)
        where = f"GPU {gpu.index} ({event.pci_bus_id})" if gpu else f"GPU {event.pci_bus_id}"
        summary = f"XID {event.xid} {entry.name} on {where}"
        if event.message and _norm(event.message) != _norm(entry.name):
            summary += f": {event.message}"
        return CheckResult(
            check=self.name,
            status=status_for(action),
            action=action,
            category=entry.category,
            summary=summary[:500],
            gpu=gpu,
            xid=event.xid,
            evidence={
                "raw": event.raw,
                "pci_bus_id": event.pci_bus_id,
                "pid": event.pid,
                "process": event.process,
                "message": event.message,
                "table": entry.source,
            },
            observed_at=event.seen_at,
        )


def _action(entry: XidEntry, event: XidEvent) -> Action:
    if event.xid != 154:
        return entry.action
    m = _RECOVERY_RE.search(event.message)
    if m is None:
        return entry.action
    return _RECOVERY_ACTIONS.get(int(m.group(1), 0), entry.action)


def _norm(text: str) -> str:
    return text.strip().rstrip(".").lower()
