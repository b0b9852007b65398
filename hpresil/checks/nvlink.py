"""``nvlink``: NVLink state and data-link error counters per GPU.

Policy (gpu-health.md s4/s7, as DCGM's health watches): a link inactive while the
GPU's other links are up (or fewer active links than ``expected_links``), any growth
of a link's replay or recovery counter within ``window_s``, or CRC errors (flit and
data) at >= ``max_crc_per_s`` fail the GPU: drain (NVLINK_NVSWITCH; reset, RMA if the
same link repeats). No link active at all is a WARN (a PCIe card without a bridge
looks the same; set ``expected_links`` on NVLink systems). Counter growth needs the
snapshot's GpuHistory fact; without it only link states are judged. GPUs without
NVLink: UNSUPPORTED.
"""

from __future__ import annotations

from typing import Any

from hpresil.adapters.gpu.history import GpuHistory, Timed, increase
from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.per_gpu import PerGpuCheck
from hpresil.config.checks import NvlinkConfig
from hpresil.vocab import Action, Category, CheckResult
from hpresil.vocab.gpu import GpuSample, NvLink
from hpresil.vocab.snapshot import Snapshot


class NvlinkCheck(PerGpuCheck):
    name = "nvlink"

    def __init__(self, config: NvlinkConfig | None = None) -> None:
        self.config = config or NvlinkConfig()

    def judge(self, gpu: GpuSample, snapshot: Snapshot) -> CheckResult:
        links = gpu.nvlink
        if not links:
            return self.unavailable(gpu, snapshot, "NVLink")
        history = snapshot.fact(GpuHistory)
        points = history.of(gpu, self.config.window_s) if history is not None else None
        inactive = [link.link for link in links if not link.active]
        evidence: dict[str, Any] = {
            "links": len(links),
            "inactive": inactive,
            "counters_judged": points is not None,
        }
        findings = self._states(len(links), inactive)
        if points is not None:
            findings += self._errors(links, points, evidence)
        active = len(links) - len(inactive)
        return self.verdict(gpu, snapshot, findings, f"{active} links active", evidence)

    def _states(self, total: int, inactive: list[int]) -> list[Finding]:
        active, expected = total - len(inactive), self.config.expected_links
        names = ", ".join(str(i) for i in inactive)
        if expected is not None and active < expected:
            text = f"{active} of {expected} NVLinks active (inactive: {names or 'none'})"
            return [fail(text, Action.DRAIN, Category.NVLINK_NVSWITCH)]
        if expected is None and active == 0:
            return [warn("no NVLink active", Category.NVLINK_NVSWITCH)]
        if expected is None and inactive:
            return [fail(f"NVLink {names} inactive", Action.DRAIN, Category.NVLINK_NVSWITCH)]
        return []

    def _errors(
        self, links: tuple[NvLink, ...], points: tuple[Timed, ...], evidence: dict[str, Any]
    ) -> list[Finding]:
        found: list[Finding] = []
        if not points or points[0].sample.nvlink == points[-1].sample.nvlink:
            return found  # counters only grow (or reset): equal ends, nothing grew
        indexed = _by_link(points)
        for link in links:
            grown = {name: _growth(indexed, link.link, name) for name in _COUNTERS}
            bad = {k: v for k, v in grown.items() if v is not None and v[0] > 0}
            if bad:
                evidence.setdefault("errors", {})[str(link.link)] = {
                    k: v[0] for k, v in bad.items()
                }
            found += self._link_findings(link.link, grown)
        return found

    def _link_findings(
        self, link: int, grown: dict[str, tuple[int, float] | None]
    ) -> list[Finding]:
        found = []
        for name in ("replay", "recovery"):
            value = grown[name]
            if value is not None and value[0] >= 1:
                text = f"NVLink {link}: {value[0]} {name} errors in {value[1]:.0f} s"
                found.append(fail(text, Action.DRAIN, Category.NVLINK_NVSWITCH))
        crc = [g for g in (grown["crc_flit"], grown["crc_data"]) if g is not None and g[1] > 0]
        per_s = sum(g[0] / g[1] for g in crc)
        if per_s >= self.config.max_crc_per_s:
            text = f"NVLink {link}: {per_s:.0f} CRC errors/s"
            found.append(fail(text, Action.DRAIN, Category.NVLINK_NVSWITCH))
        return found


_COUNTERS = ("replay", "recovery", "crc_flit", "crc_data")


_Indexed = list[tuple[float, dict[int, NvLink]]]


def _by_link(points: tuple[Timed, ...]) -> _Indexed:
    """Each sample's links by number, built once per GPU (not per link and counter)."""
    return [(p.at, {x.link: x for x in p.sample.nvlink or ()}) for p in points]


def _growth(indexed: _Indexed, link: int, counter: str) -> tuple[int, float] | None:
    series = []
    for at, links in indexed:
        found = links.get(link)
        series.append((at, getattr(found, counter) if found is not None else None))
    return increase(series)
