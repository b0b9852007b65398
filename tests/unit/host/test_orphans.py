"""The orphan reaper: which job processes Slurm no longer runs here, killed only after
two looks and the grace, never when Slurm cannot be asked, never a reused pid; real
children killed with SIGTERM, and SIGKILL when they ignore it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

import psutil
import pytest

from hpresil.adapters.slurm.model import SlurmJob
from hpresil.errors import SlurmError
from hpresil.host.orphans import OrphanReaper, find_orphans, is_alive, signal_process
from hpresil.host.slurm_jobs import JobProcess
from hpresil.vocab import Action, Category, Status
from tests.unit.host.builders import AT, Clock
from tests.unit.host.jobfakes import NODE, Monotonic

STARTED = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)  # the current incarnation's start
BEFORE = STARTED.timestamp() - 3600  # a process of an earlier incarnation started then


def slurm_job(
    job_id: int = 42,
    state: str = "RUNNING",
    nodes: tuple[str, ...] = (NODE,),
    restart_count: int = 0,
    start_time: datetime | None = STARTED,
) -> SlurmJob:
    return SlurmJob(
        job_id=job_id,
        name="train",
        user="alice",
        state=state,
        nodes=nodes,
        requeue=True,
        restart_count=restart_count,
        submit_time=STARTED,
        start_time=start_time,
    )


def proc(
    pid: int,
    job_id: int = 42,
    restart: int = 0,
    created: float = BEFORE,
    name: str = "python",
    ppid: int = 1,
) -> JobProcess:
    return JobProcess(pid, created, name, job_id, restart_count=restart, ppid=ppid)


class Slurm:
    """``slurm.jobs(active_only=False)`` stand-in."""

    def __init__(self, *jobs: SlurmJob) -> None:
        self.jobs = list(jobs)
        self.error: Exception | None = None
        self.asked = 0

    def __call__(self) -> list[SlurmJob]:
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.jobs


class Signals:
    """Records signals; processes die on SIGTERM unless stubborn."""

    def __init__(self, *, stubborn: Sequence[int] = (), reused: Sequence[int] = ()) -> None:
        self.sent: list[tuple[int, int]] = []
        self.dead: set[int] = set()
        self.stubborn, self.reused = set(stubborn), set(reused)

    def signal(self, pid: int, create_time: float, sig: int) -> bool:
        if pid in self.reused or pid in self.dead:
            return False
        self.sent.append((pid, sig))
        if sig == signal.SIGKILL or pid not in self.stubborn:
            self.dead.add(pid)
        return True

    def alive(self, pid: int, create_time: float) -> bool:
        return pid not in self.dead and pid not in self.reused


def reaper(
    slurm: Callable[[], list[SlurmJob]],
    signals: Signals,
    mono: Monotonic,
    grace_s: float = 30.0,
) -> OrphanReaper:
    return OrphanReaper(
        NODE,
        slurm,
        grace_s=grace_s,
        term_wait_s=2.0,
        signaller=signals.signal,
        alive=signals.alive,
        monotonic=mono,
        sleep=mono.advance,
        clock=Clock(),
        protected_pids=frozenset(),
    )


# --- which processes are orphaned ---
def test_a_job_slurm_runs_here_has_no_orphans() -> None:
    for state in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED"):
        assert find_orphans([proc(1000)], {42: slurm_job(state=state)}, NODE) == {}


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (None, "slurm no longer knows the job"),
        (slurm_job(state="PENDING", nodes=(), restart_count=1), "slurm has it PENDING (restart 1)"),
        (slurm_job(state="COMPLETED"), "slurm has it COMPLETED (restart 0)"),
        (slurm_job(nodes=("node2",), restart_count=1), "slurm runs restart 1 on node2"),
        (slurm_job(restart_count=1), "slurm runs restart 1 here"),
    ],
)
def test_a_process_is_orphaned_when_slurm_does_not_run_its_incarnation_here(
    job: SlurmJob | None, why: str
) -> None:
    found = find_orphans([proc(1000)], {} if job is None else {42: job}, NODE)
    assert [(o.process.pid, o.why) for o in found.values()] == [(1000, why)]


def test_the_current_incarnation_is_spared_even_without_its_restart_count() -> None:
    job = slurm_job(restart_count=1)
    old = proc(1000, created=BEFORE)
    new = proc(2000, created=STARTED.timestamp() + 5)  # SLURM_RESTART_COUNT unset: 0
    child_of_old = proc(1001, created=STARTED.timestamp() + 60, ppid=1000)
    found = find_orphans([old, new, child_of_old], {42: job}, NODE)
    assert sorted(found) == [old.key, child_of_old.key]


# --- the reaper ---
def test_an_orphan_is_killed_only_after_two_looks_and_its_grace() -> None:
    slurm, signals, mono = (
        Slurm(slurm_job(nodes=("node2",), restart_count=1)),
        Signals(),
        Monotonic(),
    )
    r = reaper(slurm, signals, mono, grace_s=30.0)
    procs = [proc(1000), proc(1001, ppid=1000)]

    assert r.look(procs) == []  # first look: a suspect
    mono.advance(15)
    assert r.look(procs) == []  # two looks, but within the grace
    assert signals.sent == []
    mono.advance(16)
    (result,) = r.look(procs)

    assert signals.sent == [(1000, signal.SIGTERM), (1001, signal.SIGTERM)]
    assert (result.check, result.status, result.action, result.category) == (
        "orphans",
        Status.WARN,
        Action.NONE,
        Category.HOST,
    )
    assert result.summary == (
        "killed 2 orphaned processes of job 42 (restart 0; slurm runs restart 1 on node2)"
    )
    assert result.evidence["pids"] == [1000, 1001] and result.evidence["sigkill_pids"] == []
    assert result.evidence["slurm_restart_count"] == 1 and result.observed_at == AT
    assert r.look(procs) == []  # gone: nothing more to do


def test_a_process_slurm_runs_here_again_is_never_killed() -> None:
    slurm, signals, mono = Slurm(slurm_job(nodes=("node2",))), Signals(), Monotonic()
    r = reaper(slurm, signals, mono, grace_s=0.0)
    r.look([proc(1000)])
    slurm.jobs = [slurm_job()]  # the answer changed: it runs here
    mono.advance(60)
    assert r.look([proc(1000)]) == []
    slurm.jobs = [slurm_job(nodes=("node2",))]
    mono.advance(60)
    assert r.look([proc(1000)]) == []  # a new suspect: the grace starts again
    assert signals.sent == []


def test_an_older_incarnation_is_killed_when_slurm_counts_more_restarts() -> None:
    slurm, signals, mono = Slurm(slurm_job(restart_count=2)), Signals(), Monotonic()
    r = reaper(slurm, signals, mono, grace_s=0.0)
    current = proc(2000, restart=2, created=STARTED.timestamp() + 1)
    older = proc(1000, restart=1)
    r.look([current, older])
    mono.advance(15)
    (result,) = r.look([current, older])
    assert signals.sent == [(1000, signal.SIGTERM)]
    assert (
        result.summary
        == "killed 1 orphaned process of job 42 (restart 1; slurm runs restart 2 here)"
    )


def test_nothing_is_killed_while_slurm_cannot_be_asked(caplog: pytest.LogCaptureFixture) -> None:
    slurm, signals, mono = Slurm(), Signals(), Monotonic()
    r = reaper(slurm, signals, mono, grace_s=0.0)
    r.look([proc(1000)])  # slurm has no job 42: a suspect
    slurm.error = SlurmError(["squeue", "--json"], None, timed_out=True, timeout=10.0)
    with caplog.at_level(logging.WARNING, logger="hpresil.host.orphans"):
        for _ in range(3):
            mono.advance(15)
            assert r.look([proc(1000)]) == []
    assert signals.sent == []
    assert [rec.message for rec in caplog.records] == [
        "orphan reaper: slurm cannot be asked, killing nothing: "
        "`squeue --json` timed out after 10 s"
    ]
    slurm.error = None
    mono.advance(15)
    assert len(r.look([proc(1000)])) == 1  # answered again: the suspect's time was kept


def test_slurm_is_not_asked_when_no_job_runs_here() -> None:
    slurm = Slurm()
    assert reaper(slurm, Signals(), Monotonic()).look([]) == []
    assert slurm.asked == 0


def test_a_reused_pid_is_not_signalled_and_stubborn_ones_get_sigkill() -> None:
    slurm, mono = Slurm(), Monotonic()
    signals = Signals(stubborn=[1001], reused=[1002])
    r = reaper(slurm, signals, mono, grace_s=0.0)
    procs = [proc(1000), proc(1001), proc(1002)]
    r.look(procs)
    mono.advance(15)
    (result,) = r.look(procs)
    assert signals.sent == [
        (1000, signal.SIGTERM),
        (1001, signal.SIGTERM),
        (1001, signal.SIGKILL),
    ]
    assert result.evidence["pids"] == [1000, 1001]
    assert result.evidence["sigkill_pids"] == [1001]


def test_slurm_daemons_and_the_agents_lineage_are_never_killed() -> None:
    slurm, signals, mono = Slurm(), Signals(), Monotonic()
    r = OrphanReaper(
        NODE,
        slurm,
        grace_s=0.0,
        signaller=signals.signal,
        alive=signals.alive,
        monotonic=mono,
        protected_pids=frozenset({77}),
    )
    procs = [proc(10, name="slurmstepd"), proc(11, name="slurmd"), proc(77)]
    r.look(procs)
    mono.advance(15)
    assert r.look(procs) == [] and signals.sent == [] and slurm.asked == 0


# --- real processes ---
IGNORES_TERM = (  # says "ready" once SIGTERM is ignored, then waits
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\ntime.sleep(60)\n"
)


@pytest.fixture
def spawn() -> Iterator[Callable[[list[str]], subprocess.Popen[bytes]]]:
    children: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str]) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


def real(child: subprocess.Popen[bytes]) -> JobProcess:
    return proc(child.pid, created=psutil.Process(child.pid).create_time(), name="sleep")


def exited(child: subprocess.Popen[bytes]) -> int | None:
    try:
        return child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None


def test_a_real_orphan_is_terminated(spawn: Callable[[list[str]], subprocess.Popen[bytes]]) -> None:
    child = spawn(["sleep", "60"])
    orphan = real(child)
    r = OrphanReaper(NODE, Slurm(), grace_s=0.0, clock=Clock(), protected_pids=frozenset())
    assert r.look([orphan]) == []
    assert child.poll() is None
    (result,) = r.look([orphan])
    assert exited(child) == -signal.SIGTERM
    assert result.evidence["pids"] == [child.pid]


def test_a_real_orphan_ignoring_sigterm_is_killed(
    spawn: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    child = spawn([sys.executable, "-c", IGNORES_TERM])
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"  # handler set
    orphan = real(child)
    r = OrphanReaper(
        NODE, Slurm(), grace_s=0.0, term_wait_s=0.5, clock=Clock(), protected_pids=frozenset()
    )
    r.look([orphan])
    (result,) = r.look([orphan])
    assert exited(child) == -signal.SIGKILL
    assert result.evidence["sigkill_pids"] == [child.pid]


def test_a_real_process_with_another_start_time_is_left_alone(
    spawn: Callable[[list[str]], subprocess.Popen[bytes]],
) -> None:
    child = spawn(["sleep", "60"])
    started = psutil.Process(child.pid).create_time()
    assert not signal_process(child.pid, started - 5.0, signal.SIGTERM)  # "reused" pid
    assert is_alive(child.pid, started) and not is_alive(child.pid, started - 5.0)
    assert child.poll() is None
