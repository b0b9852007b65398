"""The orphan reaper: kill a job's processes that Slurm no longer runs on this node.

When a node stops answering, Slurm requeues its jobs, but the old instance may keep
running (seen in the lab with ``proctrack/linuxproc``, which loses track of processes)
and write the checkpoint folder the new instance reads. The job helper's generation
lease stops its writes; the reaper removes the processes when the node is back.

A local process of job J (see :mod:`hpresil.host.slurm_jobs`) is orphaned when Slurm
does not have J running here (RUNNING, COMPLETING, CONFIGURING or SUSPENDED with this
node in its node list), or when Slurm's restart count for J is higher than the
process's ``SLURM_RESTART_COUNT``: an older incarnation, the job perhaps requeued back
onto this very node. The restart rule spares a process started after Slurm started
the current incarnation (``START_SKEW_S`` allowed for clocks; a requeue after a node
failure comes at least SlurmdTimeout later), unless its parent is an orphan: an old
process's new child inherits the old count.

Safety:

* a process is killed only after it was seen orphaned on two looks at least
  ``grace_s`` apart, and only if it is still the same process (pid and start time:
  a reused pid is never signalled);
* nothing is killed when Slurm cannot be asked (one log line until it answers again);
* Slurm's daemons, munge, init and the agent itself (and its ancestors) are never
  killed, whatever their environment says;
* SIGTERM first, SIGKILL after ``term_wait_s`` to those still alive.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil

from hpresil.adapters.slurm.model import SlurmJob
from hpresil.clock import Clock, utcnow
from hpresil.host.slurm_jobs import JobProcess
from hpresil.vocab import Action, Category, CheckResult, Status

log = logging.getLogger(__name__)

CHECK = "orphans"
RUNS_HERE = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"})
PROTECTED = frozenset(
    {"slurmd", "slurmstepd", "slurmctld", "slurmdbd", "munged", "systemd", "init", "sshd"}
)
START_SKEW_S = 30.0
TERM_WAIT_S = 5.0

Signaller = Callable[[int, float, int], bool]  # (pid, create_time, signal) -> sent
Liveness = Callable[[int, float], bool]  # (pid, create_time) -> still that process, alive


@dataclass(frozen=True)
class Orphan:
    process: JobProcess
    why: str  # "slurm runs restart 1 on node2"
    slurm: SlurmJob | None = None


def find_orphans(
    processes: Iterable[JobProcess], slurm_jobs: Mapping[int, SlurmJob], node: str
) -> dict[tuple[int, float], Orphan]:
    """The orphaned ones among ``processes``, keyed by (pid, start time)."""
    procs = list(processes)
    found: dict[tuple[int, float], Orphan] = {}
    for proc in procs:
        job = slurm_jobs.get(proc.job_id)
        why = _why(proc, job, node)
        if why is not None:
            found[proc.key] = Orphan(proc, why, job)
    _add_children_of_old(procs, slurm_jobs, found)
    return found


def _why(proc: JobProcess, job: SlurmJob | None, node: str) -> str | None:
    if job is None:
        return "slurm no longer knows the job"
    if job.state not in RUNS_HERE:
        return f"slurm has it {job.state} (restart {job.restart_count})"
    if node not in job.nodes:
        return f"slurm runs restart {job.restart_count} on {_nodes(job.nodes)}"
    if job.restart_count > proc.restart_count and not _started_after(proc, job):
        return f"slurm runs restart {job.restart_count} here"
    return None


def _add_children_of_old(
    procs: list[JobProcess],
    slurm_jobs: Mapping[int, SlurmJob],
    found: dict[tuple[int, float], Orphan],
) -> None:
    """Processes an old incarnation started after the new one began (they inherit the
    old restart count but are too young for the start-time rule)."""
    changed = True
    while changed:
        changed = False
        orphan_pids = {o.process.pid: o for o in found.values()}
        for proc in procs:
            parent = orphan_pids.get(proc.ppid)
            job = slurm_jobs.get(proc.job_id)
            if proc.key in found or parent is None or job is None:
                continue
            if parent.process.job_id == proc.job_id and job.restart_count > proc.restart_count:
                found[proc.key] = Orphan(proc, parent.why, job)
                changed = True


def _started_after(proc: JobProcess, job: SlurmJob) -> bool:
    if job.start_time is None:
        return False
    return proc.create_time > job.start_time.timestamp() - START_SKEW_S


def _nodes(nodes: Sequence[str]) -> str:
    if not nodes:
        return "no node"
    return ",".join(nodes[:4]) + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")


def signal_process(pid: int, create_time: float, sig: int) -> bool:
    """Send ``sig`` to ``pid`` if it is still the process started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if not _same_start(proc.create_time(), create_time):
            return False
        proc.send_signal(sig)
        return True
    except psutil.NoSuchProcess:  # gone (or a zombie)
        return False
    except psutil.AccessDenied:
        log.warning("not allowed to signal pid %d (the agent must run as root)", pid)
        return False


def is_alive(pid: int, create_time: float) -> bool:
    """Whether ``pid`` is still the process started at ``create_time``, not a zombie."""
    try:
        proc = psutil.Process(pid)
        return _same_start(proc.create_time(), create_time) and proc.status() != "zombie"
    except psutil.Error:
        return False


def _same_start(a: float, b: float) -> bool:
    return abs(a - b) < 0.01  # start times are counted in clock ticks (10 ms)


def own_lineage() -> frozenset[int]:
    """The agent's pid and its ancestors': never killed."""
    me = psutil.Process()
    return frozenset({me.pid, *(p.pid for p in me.parents())})


@dataclass
class _Suspect:
    first: float  # monotonic time first seen orphaned
    looks: int = 1


@dataclass
class _Group:
    job_id: int
    restart_count: int
    why: str
    slurm: SlurmJob | None
    procs: list[JobProcess] = field(default_factory=list)


class OrphanReaper:
    """Looks (every ``jobs.observe_s`` in the agent) and kills orphans after their grace."""

    def __init__(
        self,
        node: str,
        slurm_jobs: Callable[[], Sequence[SlurmJob]],
        *,
        grace_s: float,
        term_wait_s: float = TERM_WAIT_S,
        signaller: Signaller = signal_process,
        alive: Liveness = is_alive,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock = utcnow,
        protected_pids: frozenset[int] | None = None,
    ) -> None:
        self.node = node
        self._slurm_jobs = slurm_jobs
        self._grace = grace_s
        self._term_wait = term_wait_s
        self._signal = signaller
        self._alive = alive
        self._monotonic = monotonic
        self._sleep = sleep
        self._clock = clock
        self._protected = own_lineage() if protected_pids is None else protected_pids
        self._suspects: dict[tuple[int, float], _Suspect] = {}
        self._slurm_down = False

    def look(self, processes: Sequence[JobProcess]) -> list[CheckResult]:
        """One look at this node's job processes; a result per job whose orphans died."""
        procs = [p for p in processes if p.name not in PROTECTED and p.pid not in self._protected]
        if not procs:
            self._suspects.clear()
            return []
        slurm = self._ask()
        if slurm is None:
            return []  # kill nothing; the suspects wait for an answer
        orphans = find_orphans(procs, slurm, self.node)
        now = self._monotonic()
        self._suspects = {k: self._seen(k, now) for k in orphans}
        due = [o for k, o in orphans.items() if self._due(self._suspects[k], now)]
        results = [self._kill(group) for group in _groups(due)]
        for orphan in due:
            self._suspects.pop(orphan.process.key, None)
        return [r for r in results if r is not None]

    def _ask(self) -> dict[int, SlurmJob] | None:
        try:
            jobs = {j.job_id: j for j in self._slurm_jobs()}
        except Exception as exc:
            if not self._slurm_down:
                log.warning("orphan reaper: slurm cannot be asked, killing nothing: %s", exc)
            self._slurm_down = True
            return None
        if self._slurm_down:
            log.info("orphan reaper: slurm answers again")
        self._slurm_down = False
        return jobs

    def _seen(self, key: tuple[int, float], now: float) -> _Suspect:
        suspect = self._suspects.get(key)
        if suspect is None:
            return _Suspect(first=now)
        suspect.looks += 1
        return suspect

    def _due(self, suspect: _Suspect, now: float) -> bool:
        return suspect.looks >= 2 and now - suspect.first >= self._grace

    def _kill(self, group: _Group) -> CheckResult | None:
        termed = [p for p in group.procs if self._signal(p.pid, p.create_time, signal.SIGTERM)]
        deadline = self._monotonic() + self._term_wait
        while any(self._alive(p.pid, p.create_time) for p in termed):
            if self._monotonic() >= deadline:
                break
            self._sleep(0.1)
        survivors = [p for p in termed if self._alive(p.pid, p.create_time)]
        killed = [p for p in survivors if self._signal(p.pid, p.create_time, signal.SIGKILL)]
        if not termed:
            return None
        pids = [p.pid for p in termed]
        noun = "process" if len(pids) == 1 else "processes"
        summary = (
            f"killed {len(pids)} orphaned {noun} of job {group.job_id} "
            f"(restart {group.restart_count}; {group.why})"
        )
        log.warning("%s: pids %s%s", summary, pids, f", SIGKILL {len(killed)}" if killed else "")
        return CheckResult(
            check=CHECK,
            status=Status.WARN,
            action=Action.NONE,
            category=Category.HOST,
            summary=summary[:500],
            evidence=self._evidence(group, pids, [p.pid for p in killed]),
            observed_at=self._clock(),
        )

    def _evidence(self, group: _Group, pids: list[int], killed: list[int]) -> dict[str, Any]:
        slurm = group.slurm
        return {
            "job_id": group.job_id,
            "restart_count": group.restart_count,
            "pids": pids,
            "sigkill_pids": killed,
            "reason": group.why,
            "slurm_state": slurm.state if slurm else None,
            "slurm_restart_count": slurm.restart_count if slurm else None,
            "slurm_nodes": list(slurm.nodes) if slurm else [],
        }


def _groups(orphans: Iterable[Orphan]) -> list[_Group]:
    """Orphans by job and restart count, oldest process first."""
    groups: dict[tuple[int, int], _Group] = {}
    for o in sorted(orphans, key=lambda o: (o.process.create_time, o.process.pid)):
        p = o.process
        group = groups.setdefault(
            (p.job_id, p.restart_count), _Group(p.job_id, p.restart_count, o.why, o.slurm)
        )
        group.procs.append(p)
    return list(groups.values())
