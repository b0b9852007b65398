"""The node listing reused for no longer than it took to read: a burst of drains on a
big cluster reads ``sinfo`` once, never a listing older than a fresh read would be,
and hpresil's own drains and resumes are written into it."""

from __future__ import annotations

from hpresil.adapters.slurm import Slurm
from hpresil.adapters.slurm.listing import Listing
from hpresil.adapters.slurm.model import SlurmNode
from hpresil.vocab.actions import DrainOutcome, ResumeOutcome
from tests.unit.controller.fakes import FakeBackend


class SlowClock:
    """Monotonic time that the fake ``sinfo`` moves by ``read_s`` per listing."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowBackend(FakeBackend):
    def __init__(self, clock: SlowClock, read_s: float, *names: str) -> None:
        super().__init__(*names)
        self.clock, self.read_s = clock, read_s
        self.reads = 0

    def nodes(self) -> list[SlurmNode]:
        self.clock.now += self.read_s
        self.reads += 1
        return super().nodes()


def setup(read_s: float) -> tuple[Slurm, SlowBackend, SlowClock]:
    clock = SlowClock()
    backend = SlowBackend(clock, read_s, "n1", "n2", "n3")
    slurm = Slurm(backend, retries=0, backoff_s=0, listing=Listing(clock))
    return slurm, backend, clock


def sinfo_calls(backend: SlowBackend) -> int:
    return backend.reads


def test_a_burst_of_drains_reads_the_listing_once() -> None:
    slurm, backend, clock = setup(read_s=1.0)
    for name in ("n1", "n2", "n3"):
        assert slurm.drain(name, "hpresil: #1 xid 79") is DrainOutcome.DRAINED
        clock.now += 0.1  # each scontrol takes a while
    assert sinfo_calls(backend) == 1


def test_a_listing_older_than_its_read_took_is_read_again() -> None:
    slurm, backend, clock = setup(read_s=0.5)
    slurm.drain("n1", "hpresil: #1")
    clock.now += 0.6
    backend.set_node("n2", "IDLE", "DRAIN", reason="admin: fan")  # a person, meanwhile
    assert slurm.drain("n2", "hpresil: #2") is DrainOutcome.FOREIGN
    assert sinfo_calls(backend) == 2


def test_hpresil_s_own_drain_and_resume_are_in_the_kept_listing() -> None:
    slurm, backend, _ = setup(read_s=5.0)
    slurm.drain("n1", "hpresil: #1")
    assert slurm.drain("n1", "hpresil: #1") is DrainOutcome.ALREADY_OURS
    assert slurm.resume("n1") is ResumeOutcome.RESUMED
    assert slurm.node("n1").drained is False
    assert sinfo_calls(backend) == 1


def test_a_fresh_listing_always_reads() -> None:
    slurm, backend, _ = setup(read_s=5.0)
    slurm.nodes()
    slurm.nodes()
    assert sinfo_calls(backend) == 2
