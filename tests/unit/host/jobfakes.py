"""A process table with environments, working folders and standard outputs, and a
hand-driven monotonic clock, for the jobs source and the orphan reaper."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hpresil.host.job_progress import FileState, file_state
from hpresil.host.procs import ProcInfo

NODE = "node1"


def job_env(job_id: int, node: str = NODE, **extra: str) -> dict[str, str]:
    """What slurmstepd gives a task of ``job_id`` on ``node`` (plus ``extra``)."""
    return {"SLURM_JOB_ID": str(job_id), "SLURMD_NODENAME": node, "HOME": "/home/u", **extra}


@dataclass
class FakeProc:
    pid: int
    name: str
    env: Mapping[str, str] | None  # None: not ours to read
    ppid: int = 1
    create_time: float = 1000.0
    status: str = "sleeping"
    stdout: Path | None = None  # fd 1 when it is a regular file
    cwd: str = "/"


@dataclass
class FakeProcesses:
    """The table (``list_processes``) and the reader (``ProcessReader``) at once."""

    procs: dict[int, FakeProc] = field(default_factory=dict)
    environ_reads: Counter[int] = field(default_factory=Counter)

    def add(self, proc: FakeProc) -> FakeProc:
        self.procs[proc.pid] = proc
        return proc

    def remove(self, pid: int) -> None:
        del self.procs[pid]

    def __call__(self) -> list[ProcInfo]:
        return [
            ProcInfo(p.pid, p.name, p.status, ppid=p.ppid, create_time=p.create_time)
            for p in self.procs.values()
        ]

    def environ(self, pid: int, create_time: float) -> Mapping[str, str] | None:
        self.environ_reads[pid] += 1
        proc = self.procs.get(pid)
        if proc is None or proc.create_time != create_time:
            return None
        return proc.env

    def stdout(self, pid: int) -> FileState | None:
        proc = self.procs.get(pid)
        if proc is None or proc.stdout is None:
            return None
        return file_state(proc.stdout)

    def cwd(self, pid: int) -> str | None:
        proc = self.procs.get(pid)
        return proc.cwd if proc else None


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self, now: float = 5000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
