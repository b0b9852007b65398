"""Remediation policy: what a report's results mean for its node. Pure: no I/O.

A result is a *fault* when it FAILs with an action that drains. The first fault
opens an incident on the node; later faults attach to the node's open incident
(one per node), raising its action to the most severe seen and keeping the
identity (category, xid, GPU) of the fault that opened it, except that a hardware
fault takes over an incident opened for a non-hardware reason (an operator drain,
an application fault) so that it counts against the node's MTTF.

A fault drains the node (``drain`` lets jobs finish; ``drain_now`` and above also
requeue the jobs running there, if ``policy.requeue_jobs``). Application faults
never drain. A node already drained for its open incident is not drained again
unless the new fault escalates to requeueing jobs. WARN and watch results change
nothing here: they are stored with the report.

Escalation on recurrence (``policy.escalate_on_recurrence``): the caller counts the
earlier incidents of a fault's category on the same GPU within the window; an action
on NVIDIA's ladder (reset GPU -> reboot -> replace) climbs one step per earlier
incident, so a second XID 79 on one serial suggests replacing the GPU, and an XID 48
goes reset, then reboot, then replace.

The lemon rule (``policy.replace_after``, 0: off): a GPU or a node that keeps failing
is replaced, whatever the faults. The caller counts the *strikes*, the hardware
incidents of the node's own (neither a shared component's nor a job's, as they count
against its MTTF) within the same window, on each faulty GPU (by serial, else UUID,
else node and index) and anywhere on the node; a hardware fault whose incident (the
one it opens or joins, counted too) is the ``replace_after``-th strike on its GPU or
its node is answered with replace, and its summary says so (``[lemon: 3rd hardware
fault on GPU serial 1654922006536 in 30 days: replace]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from hpresil.config import REASON_MAX, PolicyConfig
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity

LADDER = (Action.RESET_GPU, Action.REBOOT, Action.REPLACE)

RecurrenceKey = tuple[Category, str]  # (category, the GPU or node it happened on)


def recurrence_key(node: str, result: CheckResult) -> RecurrenceKey:
    """Which earlier incidents count as the same fault recurring."""
    gpu = result.gpu
    return (category_of(result), gpu_key(node, gpu) if gpu else node)


def gpu_key(node: str, gpu: GpuIdentity) -> str:
    """A GPU's name wherever it moves: its serial, else its UUID, else ``node/gpuN``."""
    return gpu.serial or gpu.uuid or f"{node}/gpu{gpu.index}"


@dataclass(frozen=True)
class Strikes:
    """The lemon rule's count of a node's own hardware incidents within the window,
    the incident the report's faults open or join left out."""

    node: int = 0  # anywhere on the node
    gpus: Mapping[str, int] = field(default_factory=dict)  # per :func:`gpu_key`


@dataclass(frozen=True)
class History:
    """What the caller counted of the past within ``policy.recurrence_window_days``,
    the incident the report's faults join left out."""

    recurrences: Mapping[RecurrenceKey, int] = field(default_factory=dict)
    # None: the lemon rule is not weighed (off, no hardware fault, or the faults join
    # an incident put down to a shared component)
    strikes: Strikes | None = None


def escalate(action: Action, earlier: int) -> Action:
    """``action`` moved ``earlier`` steps up the ladder; actions off the ladder stay."""
    if action not in LADDER or earlier <= 0:
        return action
    return LADDER[min(LADDER.index(action) + earlier, len(LADDER) - 1)]


@dataclass(frozen=True)
class OpenIncident:
    """What the policy needs to know of the node's open incident."""

    id: int
    category: Category
    action: Action
    hardware: bool
    drain_queued: bool  # a drain action for it is pending, done or skipped (not failed)


@dataclass(frozen=True)
class IncidentIdentity:
    """The identity an incident carries (what, where, when): taken from one fault."""

    check: str
    category: Category
    summary: str
    xid: int | None
    gpu: GpuIdentity | None
    observed_at: datetime

    @property
    def hardware(self) -> bool:
        return self.category.is_hardware


@dataclass(frozen=True)
class Decision:
    findings: int  # faults in the report; 0: nothing to do
    incident: int | None = None  # the open incident they attach to; None: open one
    identity: IncidentIdentity | None = None  # set the incident's identity (new, or taken over)
    action: Action = Action.NONE  # the incident's action after this report
    drain: bool = False
    requeue: bool = False  # requeue the jobs running on the node, after the drain
    why: str = ""

    @property
    def acts(self) -> bool:
        return self.findings > 0


NOTHING = Decision(findings=0)


def decide(
    results: Sequence[CheckResult],
    current: OpenIncident | None,
    cfg: PolicyConfig,
    earlier: History | Mapping[RecurrenceKey, int] | None = None,
    node: str = "",
) -> Decision:
    """Judge one report's results, given its node's open incident if any and its
    :class:`History` (or, for escalation only, the count of earlier incidents per
    :func:`recurrence_key`)."""
    faults = [r for r in results if r.is_fault]
    if not faults:
        return NOTHING
    past = earlier if isinstance(earlier, History) else History(recurrences=earlier or {})
    if past.recurrences and cfg.escalate_on_recurrence:
        faults = [_escalated(r, past.recurrences.get(recurrence_key(node, r), 0)) for r in faults]
    if past.strikes is not None and cfg.replace_after > 0:
        faults = _lemons(faults, past.strikes, cfg, node)
    primary = identity_of(most_severe(faults))
    action = max([f.action for f in faults] + ([current.action] if current else []), key=_rank)
    drives = [f for f in faults if category_of(f) is not Category.APP]
    drain = bool(drives) and _needs_drain(max((f.action for f in drives), key=_rank), current)
    requeue = drain and action.requeues_jobs and cfg.requeue_jobs
    takes_over = current is not None and not current.hardware and primary.hardware
    return Decision(
        findings=len(faults),
        incident=current.id if current else None,
        identity=primary if current is None or takes_over else None,
        action=action,
        drain=drain,
        requeue=requeue,
        why=explain(
            primary, len(faults), action, _consequence(bool(drives), drain, action, cfg, current)
        ),
    )


def _escalated(result: CheckResult, earlier: int) -> CheckResult:
    action = escalate(result.action, earlier)
    if action is result.action:
        return result
    nth = ordinal(earlier + 1)
    note = (
        f" [{nth} {category_of(result).value} on this GPU: {result.action.value} -> {action.value}]"
    )
    return result.model_copy(update={"action": action, "summary": result.summary + note})


def _lemons(
    faults: Sequence[CheckResult], strikes: Strikes, cfg: PolicyConfig, node: str
) -> list[CheckResult]:
    """The faults the lemon rule answers with replace: those on a GPU struck
    ``replace_after`` times; if none is, every hardware fault of a node struck so."""
    by_gpu = [_lemon(f, cfg, *_on_gpu(node, f, strikes)) for f in faults]
    if any(new is not old for new, old in zip(by_gpu, faults, strict=True)):
        return by_gpu
    return [_lemon(f, cfg, f"node {node}", strikes.node + 1) for f in faults]


def _on_gpu(node: str, result: CheckResult, strikes: Strikes) -> tuple[str, int]:
    """``result``'s GPU and its strikes, this one's incident counted (none: no GPU)."""
    if result.gpu is None:
        return "", 0
    return _gpu_name(node, result.gpu), strikes.gpus.get(gpu_key(node, result.gpu), 0) + 1


def _lemon(result: CheckResult, cfg: PolicyConfig, where: str, count: int) -> CheckResult:
    """``result`` answered with replace, when it is a hardware fault and ``count``
    (its strikes on ``where``) reaches ``replace_after``; as it is otherwise."""
    if count < cfg.replace_after or result.action is Action.REPLACE:
        return result
    if not category_of(result).is_hardware:
        return result
    days = cfg.recurrence_window_days
    window = f"{days:g} day" + ("" if days == 1 else "s")
    note = f" [lemon: {ordinal(count)} hardware fault on {where} in {window}: replace]"
    return result.model_copy(update={"action": Action.REPLACE, "summary": result.summary + note})


def _gpu_name(node: str, gpu: GpuIdentity) -> str:
    if gpu.serial:
        return f"GPU serial {gpu.serial}"
    if gpu.uuid:
        return f"GPU uuid {gpu.uuid}"
    return f"GPU {gpu.index} of {node}"


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ... ``11th``, ``12th``, ... ``21st``."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def most_severe(faults: Sequence[CheckResult]) -> CheckResult:
    """The fault with the most disruptive action; the first one on a tie."""
    return max(faults, key=lambda r: r.action.rank)


def category_of(result: CheckResult) -> Category:
    return result.category or Category.UNKNOWN


def identity_of(result: CheckResult) -> IncidentIdentity:
    """The identity an incident takes from ``result``, the fault that opens it."""
    return IncidentIdentity(
        check=result.check,
        category=category_of(result),
        summary=result.summary,
        xid=result.xid,
        gpu=result.gpu,
        observed_at=result.observed_at,
    )


def describe(f: IncidentIdentity) -> str:
    """What was found, in the check's own words (``XID 79 GPU has fallen off the bus on
    GPU 3 (0000:5d:00)``); a summary-less finding is named by XID or check and GPU."""
    if f.summary:
        return f.summary
    what = f"xid {f.xid}" if f.xid is not None else f.check
    return what + (f" on gpu {f.gpu.index}" if f.gpu is not None else "")


def explain(primary: IncidentIdentity, count: int, action: Action, consequence: str) -> str:
    more = f" (+{count - 1} more)" if count > 1 else ""
    return f"{describe(primary)}{more}; policy: {action.value} ⇒ {consequence}"


def drain_reason(
    prefix: str,
    incident: int,
    category: Category,
    xid: int | None,
    gpu: int | None,
    shared: str | None = None,
) -> str:
    """``hpresil: #12 gpu_lost_pcie xid 79 gpu 3``: short, and ours by its prefix;
    ``shared``, the component the fault is put down to: ``... ib_network switch leaf1``."""
    parts = [prefix, f"#{incident}", category.value]
    if xid is not None:
        parts.append(f"xid {xid}")
    if gpu is not None:
        parts.append(f"gpu {gpu}")
    if shared is not None:
        parts.append(shared)
    return clip(" ".join(parts))


def clip(text: str, limit: int = REASON_MAX) -> str:
    """``text`` on one line (runs of white space made one space), cut to ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def one_line(exc: Exception) -> str:
    """An error's first line, clipped to 500 characters (its type when it has no text):
    what is logged and stored of a Slurm, webhook or database failure."""
    lines = str(exc).strip().splitlines()
    return clip(lines[0] if lines else type(exc).__name__, 500)


def _rank(action: Action) -> int:
    return action.rank


def _needs_drain(action: Action, current: OpenIncident | None) -> bool:
    if not action.drains:
        return False
    if current is None or not current.drain_queued:
        return True
    return action.requeues_jobs and not current.action.requeues_jobs


def _consequence(
    drives: bool, drain: bool, action: Action, cfg: PolicyConfig, current: OpenIncident | None
) -> str:
    if not drives:
        return "application fault: no drain"
    if not drain:
        return f"drain already done or queued for incident #{current.id}" if current else "none"
    if not action.requeues_jobs:
        return "drain; running jobs may finish"
    if cfg.requeue_jobs:
        return "drain now and requeue jobs"
    return "drain now; jobs not requeued (policy.requeue_jobs is off)"
