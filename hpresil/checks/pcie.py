"""``pcie``: the GPU's PCIe link and its replay rate.

Policy (gpu-health.md s3/s4/s7): a link narrower than its maximum width fails the
GPU: drain it (PCIE_LINK). Idle GPUs lower their link *generation* to save power, so
a generation below the maximum is only a failure while the GPU is busy
(``busy_util_pct``). Replays faster than DCGM's limits (> 31/min at Gen5, > 16/min
below) over ``replay_window_s`` are a WARN; the rate needs the snapshot's GpuHistory
fact (without it, the replay rate is not judged). ``min_width`` accepts narrower
slots by design (a T4 in a cloud x8 slot reports x8 of x16).
"""

from __future__ import annotations

from typing import Any

from hpresil.adapters.gpu.history import GpuHistory, increase
from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import PcieConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample, Pcie
from hpresil.vocab.snapshot import Snapshot


class PcieCheck(PerGpuCheck):
    name = "pcie"

    def __init__(self, config: PcieConfig | None = None) -> None:
        self.config = config or PcieConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        link = gpu.pcie
        if link is None or (link.width is None and link.gen is None):
            return self.unavailable(gpu, snapshot, "PCIe link information")
        rate = self._replay_rate(gpu, snapshot.fact(GpuHistory))
        evidence: dict[str, Any] = {
            "gen": link.gen,
            "max_gen": link.max_gen,
            "width": link.width,
            "max_width": link.max_width,
            "replays": link.replays,
            "replays_per_min": None if rate is None else round(rate, 3),
            "utilization_pct": gpu.utilization_pct,
        }
        findings = self._link(link, gpu.utilization_pct) + self._replays(link, rate)
        return self.verdict(gpu, snapshot, findings, f"Gen{link.gen} x{link.width}", evidence)

    def _link(self, link: Pcie, util: int | None) -> list[Finding]:
        found = []
        want = self.config.min_width or link.max_width
        if link.width is not None and want is not None and link.width < want:
            text = f"link x{link.width}, below x{want}"
            found.append(fail(text, Action.DRAIN, Category.PCIE_LINK))
        busy = util is not None and util >= self.config.busy_util_pct
        if busy and link.gen is not None and link.max_gen is not None and link.gen < link.max_gen:
            text = f"link Gen{link.gen} under load, below Gen{link.max_gen}"
            found.append(fail(text, Action.DRAIN, Category.PCIE_LINK))
        return found

    def _replays(self, link: Pcie, rate: float | None) -> list[Finding]:
        gen5 = (link.max_gen or 0) >= 5
        limit = self.config.replays_per_min_gen5 if gen5 else self.config.replays_per_min
        if rate is None or rate <= limit:
            return []
        return [warn(f"{rate:.1f} PCIe replays/min (limit {limit:g})", Category.PCIE_LINK)]

    def _replay_rate(self, gpu: GpuSample, history: GpuHistory | None) -> float | None:
        if history is None:
            return None
        points = history.of(gpu, self.config.replay_window_s)
        grown = increase([(p.at, p.sample.pcie.replays if p.sample.pcie else None) for p in points])
        if grown is None or grown[1] <= 0:
            return None
        return grown[0] / (grown[1] / 60.0)
