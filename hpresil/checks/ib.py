"""``ib``: every InfiniBand port up, at its rate, clean and not flapping.

Policy (gpu-health.md s6/s7): a port not ACTIVE/LinkUp, slower than ``min_rate_gbps``,
or down ``flap_count`` times within ``flap_window_s`` fails with a drain (IB_NETWORK);
so does a port that disappeared, or fewer ports than ``expected_ports``. A port that
went down fewer times within the window warns until the event leaves it. Error
counters rising by more than ``warn_deltas`` in one interval warn (``fail_deltas``
fail); a saturated counter is only noted, as real fleets carry them for months. RoCE
ports (link layer Ethernet) are judged the same and say so. No ports and none
expected: UNSUPPORTED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpresil.checks.finding import Finding, fail, warn
from hpresil.checks.host_check import HostCheck
from hpresil.config.host import IbConfig
from hpresil.host.ib import IbFacts, IbPortFacts
from hpresil.vocab import Category, CheckResult, Status
from hpresil.vocab.snapshot import Snapshot


class IbCheck(HostCheck[IbFacts]):
    name = "ib"
    kind = IbFacts

    def __init__(self, config: IbConfig | None = None) -> None:
        self.config = config or IbConfig()

    def judge(self, facts: IbFacts, snapshot: Snapshot) -> list[CheckResult]:
        expected = self.config.expected_ports
        if not facts.ports and not facts.missing and not expected:
            return [self._none(facts, snapshot)]
        results = [self._port(p, facts, snapshot) for p in facts.ports]
        node = self._node(facts, snapshot)
        return [node, *results] if node else results

    def _none(self, facts: IbFacts, snapshot: Snapshot) -> CheckResult:
        return CheckResult(
            check=self.name,
            status=Status.UNSUPPORTED,
            summary=f"no InfiniBand devices under {facts.root}",
            evidence={"root": facts.root},
            observed_at=snapshot.taken_at,
        )

    def _node(self, facts: IbFacts, snapshot: Snapshot) -> CheckResult | None:
        found, expected = len(facts.ports), self.config.expected_ports
        findings = [fail(f"port {name} disappeared") for name in facts.missing]
        if expected is not None and found < expected:
            findings.insert(0, fail(f"{found} of {expected} ports found"))
        if not findings:
            return None
        evidence = {"found": found, "expected": expected, "missing": list(facts.missing)}
        return self.verdict(
            "InfiniBand",
            findings,
            ok="",
            category=Category.IB_NETWORK,
            evidence=evidence,
            snapshot=snapshot,
        )

    def _port(self, facts: IbPortFacts, ib: IbFacts, snapshot: Snapshot) -> CheckResult:
        port = facts.port
        subject = f"{port.device} port {port.port}" + (" (RoCE)" if port.is_ethernet else "")
        rate = f"{port.rate_gbps:g} Gb/s" if port.rate_gbps is not None else port.rate
        return self.verdict(
            subject,
            self._findings(facts, ib),
            ok=f"{port.state}/{port.phys_state} at {rate}",
            category=Category.IB_NETWORK,
            evidence={**_evidence(facts, ib), "downs_in_window": self._downs(facts, ib)},
            snapshot=snapshot,
        )

    def _findings(self, facts: IbPortFacts, ib: IbFacts) -> list[Finding]:
        port, cfg = facts.port, self.config
        if port.error is not None:
            return [Finding(Status.UNKNOWN, f"unreadable: {port.error}")]
        found: list[Finding] = []
        if not port.active:
            found.append(fail(f"link is {port.state or '?'} ({port.phys_state or '?'})"))
        elif cfg.min_rate_gbps is not None and (port.rate_gbps or 0.0) < cfg.min_rate_gbps:
            found.append(fail(f"runs at {port.rate}, below {cfg.min_rate_gbps:g} Gb/s"))
        downs, hours = self._downs(facts, ib), cfg.flap_window_s / 3600
        if downs >= cfg.flap_count:
            found.append(fail(f"went down {downs} times in {hours:g} h (flapping)"))
        elif downs:
            found.append(warn(f"went down {_times(downs)} in {hours:g} h"))
        found += _over(facts.deltas, cfg.fail_deltas, Status.FAIL)
        found += _over(facts.deltas, cfg.warn_deltas, Status.WARN)
        return found

    def _downs(self, facts: IbPortFacts, ib: IbFacts) -> int:
        """Link-down events within this check's flap window."""
        cutoff = ib.observed_at.timestamp() - self.config.flap_window_s
        return sum(1 for t in facts.downs if t.timestamp() > cutoff)


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _over(deltas: Mapping[str, int], limits: dict[str, int], status: Status) -> list[Finding]:
    rising = sorted(k for k, limit in limits.items() if deltas.get(k, 0) > limit)
    if not rising:
        return []
    text = f"{', '.join(rising)} rising"
    return [fail(text) if status is Status.FAIL else warn(text)]


def _evidence(facts: IbPortFacts, ib: IbFacts) -> dict[str, Any]:
    port = facts.port
    evidence: dict[str, Any] = {
        "port": port.name,
        "link_layer": port.link_layer,
        "state": port.state,
        "phys_state": port.phys_state,
        "rate": port.rate,
        "rate_gbps": port.rate_gbps,
        "interval_s": ib.interval_s,
    }
    if port.is_ethernet:
        evidence["note"] = "RoCE port (link layer Ethernet), judged like InfiniBand"
    if rising := {k: v for k, v in facts.deltas.items() if v > 0}:
        evidence["deltas"] = rising
    if saturated := port.saturated():
        evidence["saturated"] = saturated
    if port.error is not None:
        evidence["error"] = port.error
    return evidence
