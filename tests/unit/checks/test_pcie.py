"""The pcie check: link width, generation under load, replay rate."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.pcie import PcieCheck
from hpresil.config.checks import PcieConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import GpuSample, Pcie
from tests.unit.gpu.samples import A100, BLACKWELL, T4, h100s, real, snap, ticks


def _link(gpu: GpuSample, **changes: int) -> GpuSample:
    return replace(gpu, pcie=replace(gpu.pcie or Pcie(), **changes))


def test_full_links_pass_and_an_idle_downshift_is_fine() -> None:
    assert {r.status for r in PcieCheck().evaluate(snap(h100s()))} == {Status.OK}
    (a100,) = PcieCheck().evaluate(snap(real(A100)))
    assert a100.status is Status.OK
    (idle,) = PcieCheck().evaluate(snap(real(BLACKWELL)))  # Gen1 of Gen4 at 0 % load
    assert idle.status is Status.OK and idle.evidence["gen"] == 1


def test_real_t4_on_an_x8_slot_is_narrow_unless_configured() -> None:
    (r,) = PcieCheck().evaluate(snap(real(T4)))
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.PCIE_LINK)
    assert "x8, below x16" in r.summary
    (ok,) = PcieCheck(PcieConfig(min_width=8)).evaluate(snap(real(T4)))
    assert ok.status is Status.OK


def test_a_downshifted_generation_under_load_fails() -> None:
    busy = replace(_link(h100s()[0], gen=4), utilization_pct=95)
    (r,) = PcieCheck().evaluate(snap([busy]))
    assert r.status is Status.FAIL and "Gen4 under load" in r.summary
    (idle,) = PcieCheck().evaluate(snap([replace(busy, utilization_pct=0)]))
    assert idle.status is Status.OK


def test_replay_rate_over_the_window_warns() -> None:
    gpu = h100s()[0]
    steps = [(_link(gpu, replays=40 * i),) for i in range(13)]  # 40 per 5 s = 480/min
    r = PcieCheck().evaluate(snap(steps[-1], ticks(*steps)))[0]
    assert (r.status, r.action) == (Status.WARN, Action.WATCH)
    assert r.evidence["replays_per_min"] == 480.0
    slow = [(_link(gpu, replays=i),) for i in range(13)]  # 12/min, below Gen5's 31
    assert PcieCheck().evaluate(snap(slow[-1], ticks(*slow)))[0].status is Status.OK


def test_without_history_the_rate_is_not_judged_and_no_link_is_unsupported() -> None:
    (r,) = PcieCheck().evaluate(snap([_link(h100s()[0], replays=10**6)]))
    assert r.status is Status.OK and r.evidence["replays_per_min"] is None
    (u,) = PcieCheck().evaluate(snap([replace(h100s()[0], pcie=None)]))
    assert u.status is Status.UNSUPPORTED
