"""The Slurm jobs running on this node, found from the process table.

A process belongs to job J on node N when its environment holds ``SLURM_JOB_ID=J`` and
``SLURMD_NODENAME=N``: slurmstepd sets both for every task it starts (batch script and
srun tasks alike), so no Slurm call is needed, and on the lab, where all nodes share
one machine, the node name is what tells them apart. slurmd and slurmstepd themselves
run with slurmd's own environment (slurmstepd builds each task's environment as an
array for ``execve``), so they never look like job processes.

Reading a process's environment is the expensive part: it is read once per process
(pid, start time and name: a process that execs a new program is read again) and the
process listing is the agent's shared one.

Per job this answers its processes, restart count (``SLURM_RESTART_COUNT``, else the
TaskProlog's ``HPRESIL_RESTART_COUNT``, else 0, as the job helper reads it), whether
this is the job's first node (``SLURM_NODEID`` 0), its checkpoint folder
(``HPRESIL_CKPT_DIR``), the GPUs it holds here, its output file (the batch script's
standard output, when that is a regular file) and the progress signs of
:mod:`hpresil.host.job_progress`.

GPU indexes come from ``SLURM_STEP_GPUS`` (srun tasks), else ``SLURM_JOB_GPUS`` (the
batch step), both global indexes set by Slurm's gres/gpu plugin, else a numeric
``CUDA_VISIBLE_DEVICES`` (which is relative to the device cgroup where devices are
constrained, so only a last resort). A step's own list comes first because tasks on
the job's other nodes inherit the batch host's ``SLURM_JOB_GPUS`` through srun.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import psutil

from hpresil.errors import HpresilError
from hpresil.host.job_progress import (
    CheckpointSeen,
    FileState,
    JobProgress,
    Progress,
    checkpoint_seen,
    utc,
)
from hpresil.host.procs import ZOMBIE, ProcessLister, ProcInfo, list_processes
from hpresil.job.api import progress_file, restart_count

log = logging.getLogger(__name__)

_KEPT_PREFIXES = ("SLURM", "HPRESIL_")  # SLURM_* and SLURMD_NODENAME
_KEPT = frozenset({"CUDA_VISIBLE_DEVICES"})

ProgressFileFn = Callable[[int, Path | None, Mapping[str, str]], Path | None]


@dataclass(frozen=True, slots=True)
class JobProcess:
    """One process of a Slurm job on this node."""

    pid: int
    create_time: float  # tells a reused pid from this process
    name: str
    job_id: int
    restart_count: int = 0
    lead: bool = False  # SLURM_NODEID 0: the job's first node
    ppid: int = 0
    env: Mapping[str, str] = field(default_factory=dict)  # its SLURM*, HPRESIL_* variables

    @property
    def key(self) -> tuple[int, float]:
        return (self.pid, self.create_time)

    @property
    def ckpt_dir(self) -> str | None:
        return self.env.get("HPRESIL_CKPT_DIR") or None

    @property
    def gpus(self) -> tuple[int, ...]:
        return gpu_indexes(self.env)


@dataclass(frozen=True)
class LocalJob:
    """A job as seen on this node; the fields describe its newest incarnation here."""

    job_id: int
    processes: tuple[JobProcess, ...]  # every incarnation's
    restart_count: int = 0
    lead: bool = False
    ckpt_dir: str | None = None
    gpus: tuple[int, ...] = ()
    output: str | None = None  # the batch script's standard output file
    progress: Progress | None = None
    checkpoint: CheckpointSeen | None = None
    resumed_from: CheckpointSeen | None = None  # HPRESIL_RESUME_FROM, judged once


@dataclass(frozen=True)
class LocalJobs:
    """The facts: every Slurm job with processes on this node."""

    node: str
    jobs: tuple[LocalJob, ...] = ()

    def processes(self) -> list[JobProcess]:
        return [p for job in self.jobs for p in job.processes]


def gpu_indexes(env: Mapping[str, str]) -> tuple[int, ...]:
    """The GPU indexes a process holds, from Slurm's variables (see the module doc)."""
    for var in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"):
        found = _int_list(env.get(var))
        if found is not None:
            return found
    return ()


def job_process(info: ProcInfo, environ: Mapping[str, str], node: str) -> JobProcess | None:
    """``info`` as a process of a Slurm job on ``node``, or None."""
    if environ.get("SLURMD_NODENAME") != node:
        return None
    job_id = _int(environ.get("SLURM_JOB_ID"))
    if job_id is None or job_id < 1:
        return None
    return JobProcess(
        pid=info.pid,
        create_time=info.create_time,
        name=info.name,
        job_id=job_id,
        restart_count=restart_count(environ),
        lead=environ.get("SLURM_NODEID") == "0",
        ppid=info.ppid,
        env={k: v for k, v in environ.items() if k.startswith(_KEPT_PREFIXES) or k in _KEPT},
    )


class ProcfsReader:
    """A process's environment and standard output, through psutil and /proc."""

    def environ(self, pid: int, create_time: float) -> Mapping[str, str] | None:
        """None when the process is gone, was replaced (pid reused) or is not ours."""
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - create_time) > 0.01:
                return None
            return proc.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            return None

    def stdout(self, pid: int) -> FileState | None:
        """Its fd 1 when that is a regular file (a batch script's output), else None."""
        link = f"/proc/{pid}/fd/1"
        try:
            st = os.stat(link)  # the open file itself, even if renamed or deleted
            if not stat.S_ISREG(st.st_mode):
                return None
            return FileState(os.readlink(link), st.st_size, st.st_mtime)
        except OSError:
            return None

    def cwd(self, pid: int) -> str | None:
        """Its working directory (relative job paths are relative to it)."""
        try:
            return os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            return None


class ProcessReader(Protocol):
    """What the source reads about one process (tests pass a fake table)."""

    def environ(self, pid: int, create_time: float) -> Mapping[str, str] | None: ...

    def stdout(self, pid: int) -> FileState | None: ...

    def cwd(self, pid: int) -> str | None: ...


class LocalJobsSource:
    """Fact source: the Slurm jobs with processes on ``node``."""

    name = "jobs"
    kind = LocalJobs
    timeout_s = 10.0

    def __init__(
        self,
        node: str,
        *,
        list_processes: ProcessLister = list_processes,
        reader: ProcessReader | None = None,
        progress: JobProgress | None = None,
        progress_file: ProgressFileFn = progress_file,
    ) -> None:
        self.node = node
        self._list = list_processes
        self._reader = reader or ProcfsReader()
        self._progress = progress or JobProgress()
        self._progress_file = progress_file
        self._seen: dict[tuple[int, float, str], JobProcess | None] = {}
        self._resumed: dict[tuple[int, int, str], CheckpointSeen] = {}

    def collect(self) -> LocalJobs:
        by_job: dict[int, list[JobProcess]] = {}
        for proc in self._job_processes(self._list()):
            by_job.setdefault(proc.job_id, []).append(proc)
        self._progress.begin()
        jobs = tuple(self._job(job_id, by_job[job_id]) for job_id in sorted(by_job))
        self._progress.forget((j.job_id, j.restart_count) for j in jobs)
        live = {(j.job_id, j.restart_count) for j in jobs}
        self._resumed = {k: v for k, v in self._resumed.items() if k[:2] in live}
        return LocalJobs(self.node, jobs)

    def _job_processes(self, table: Iterable[ProcInfo]) -> list[JobProcess]:
        """Job processes of this node, each environment read once (see the module doc)."""
        seen: dict[tuple[int, float, str], JobProcess | None] = {}
        found = []
        for info in table:
            key = (info.pid, info.create_time, info.name)
            if key in self._seen:
                proc = self._seen[key]
            elif info.status == ZOMBIE:  # its environment is gone: judge it if seen alive
                continue
            else:
                environ = self._reader.environ(info.pid, info.create_time)
                proc = None if environ is None else job_process(info, environ, self.node)
            seen[key] = proc
            if proc is not None and info.status != ZOMBIE:
                found.append(proc if proc.ppid == info.ppid else replace(proc, ppid=info.ppid))
        self._seen = seen
        return found

    def _job(self, job_id: int, procs: list[JobProcess]) -> LocalJob:
        restart = max(p.restart_count for p in procs)
        current = sorted((p for p in procs if p.restart_count == restart), key=_age)
        pids = {p.pid for p in procs}
        top = [p for p in current if p.ppid not in pids]  # batch script, step tasks
        output = next((s for s in map(self._reader.stdout, (p.pid for p in top)) if s), None)
        # a script that exports a variable shows it in its children's environment only
        holder = _first_with(current, "HPRESIL_CKPT_DIR")
        root = self._absolute(holder, holder.ckpt_dir) if holder else None
        writer = _first_with(current, "HPRESIL_PROGRESS_FILE")
        foreign = writer is not None
        writer = writer or holder or (top or current)[0]
        heartbeat = self._absolute(writer, self._heartbeat_path(job_id, root, writer.env))
        lead = any(p.lead for p in current)
        key = (job_id, restart)
        return LocalJob(
            job_id=job_id,
            processes=tuple(sorted(procs, key=_age)),
            restart_count=restart,
            lead=lead,
            ckpt_dir=str(root) if root else None,
            gpus=tuple(sorted({g for p in current for g in p.gpus})),
            output=output.path if output else None,
            progress=self._progress.progress(key, job_id, output, heartbeat, foreign),
            checkpoint=self._progress.checkpoint(key, root) if lead and root else None,
            resumed_from=self._resumed_from(key, current) if lead else None,
        )

    def _resumed_from(
        self, key: tuple[int, int], current: list[JobProcess]
    ) -> CheckpointSeen | None:
        """The checkpoint this incarnation resumed from (the TaskProlog's export), with
        its step and commit time: judged once per incarnation."""
        holder = _first_with(current, "HPRESIL_RESUME_FROM")
        path = holder.env.get("HPRESIL_RESUME_FROM") if holder else None
        if not path:
            return None
        cache = (*key, path)
        if cache not in self._resumed:
            self._resumed[cache] = resumed_checkpoint(Path(path))
        return self._resumed[cache]

    def _absolute(self, proc: JobProcess, path: str | Path | None) -> Path | None:
        """``path`` as the job means it: a relative one is relative to its working folder."""
        if not path:
            return None
        if Path(path).is_absolute():
            return Path(path)
        cwd = self._reader.cwd(proc.pid)
        return Path(cwd, path) if cwd else None

    def _heartbeat_path(
        self, job_id: int, root: Path | None, env: Mapping[str, str]
    ) -> Path | None:
        try:
            return self._progress_file(job_id, root, env)
        except Exception as exc:  # the helper's rules must not blank the job list
            log.debug("job %d: no progress file: %r", job_id, exc)
            return None


def _first_with(procs: Iterable[JobProcess], var: str) -> JobProcess | None:
    return next((p for p in procs if p.env.get(var)), None)


def _age(proc: JobProcess) -> tuple[float, int]:
    return (proc.create_time, proc.pid)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _int_list(text: str | None) -> tuple[int, ...] | None:
    """``"0,2,5"`` as (0, 2, 5); None when unset, empty or not all indexes (UUIDs, MIG)."""
    if not text:
        return None
    parts = [_int(part.strip()) for part in text.split(",")]
    if any(p is None or p < 0 for p in parts):
        return None
    return tuple(sorted({p for p in parts if p is not None}))


def resumed_checkpoint(path: Path) -> CheckpointSeen:
    """``path`` judged as a checkpoint on its own (a directory), else its mtime: when
    hpresil's manifest (written last) or the file itself was committed."""
    from hpresil.ckpt import latest  # loaded on a node that runs a resumed job only
    from hpresil.ckpt.manifest import location as manifest_location

    try:
        found = latest(path) if path.is_dir() else None
    except HpresilError:
        found = None
    if found is not None and found.path == path:
        return checkpoint_seen(found)
    stamp = manifest_location(path)
    for candidate in (stamp, path):
        with suppress(OSError):
            return CheckpointSeen(str(path), None, utc(candidate.stat().st_mtime))
    return CheckpointSeen(str(path), None, None)
