"""Figures in, :class:`~hpresil.vocab.CheckResult` s out. Pure: no I/O, no clock.

Policy (gpu-health.md s5/s7): a GPU below ``threshold`` (0.9) of any reference it
has (the expected figure for its model, the fleet median, the node median), a bus
bandwidth below the model's floor, wrong all-reduce values, or a gpu_burn FAULTY
verdict fail with DRAIN and PERF_DEGRADED (then rerun; reproducible: RMA). A figure
with no reference at all is UNKNOWN: measured and stored, but not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hpresil.burnin import gpu_burn, nccl
from hpresil.burnin.expected import GpuModel
from hpresil.burnin.names import BUSBW_GBPS, CHECK_GPU_BURN, CHECK_NCCL
from hpresil.vocab import Action, Category, CheckResult, GpuIdentity, Status

REFERENCES = ("expected", "fleet_median", "node_median")


@dataclass(frozen=True)
class Figure:
    """One measured figure of one GPU, with what it is compared against."""

    check: str  # burnin_matmul / burnin_membw
    metric: str  # evidence key: tflops / membw_gbps
    unit: str  # TFLOPS, GB/s
    value: float
    gpu: GpuIdentity
    model: GpuModel | None = None
    expected: float | None = None
    fleet_median: float | None = None
    node_median: float | None = None
    evidence: Mapping[str, Any] | None = None  # dtype, size, iterations, ...


def judge_figure(f: Figure, threshold: float, at: datetime) -> CheckResult:
    refs = {k: v for k in REFERENCES if (v := getattr(f, k)) is not None and v > 0}
    ratios = {k: f.value / v for k, v in refs.items()}
    low = {k: r for k, r in ratios.items() if r < threshold}
    evidence: dict[str, Any] = {
        f.metric: round(f.value, 3),
        **{k: _round(refs.get(k), 3) for k in REFERENCES},
        **{f"ratio_{k}": _round(ratios.get(k), 4) for k in REFERENCES},
        "ratio": round(min(ratios.values()), 4) if ratios else None,
        "threshold": threshold,
        "model": f.model.key if f.model else None,
        **(f.evidence or {}),
    }
    shown = f"{_where(f.gpu)}: {f.value:,.1f} {f.unit}"
    if not refs:
        name = f.gpu.name or "this GPU"
        summary = f"{shown}; not judged: no expected figure for {name} and no median"
        return _result(f.check, Status.UNKNOWN, summary, at, f.gpu, evidence)
    parts = [_ratio(k, refs[k], ratios[k], f.model) for k in refs]
    if low:
        worst = min(low, key=lambda k: low[k])
        summary = f"{shown} is {low[worst]:.0%} of the {_label(worst)}, under {threshold:.0%}"
        summary += f" ({'; '.join(parts)})"
        return _fault(f.check, summary, at, f.gpu, evidence)
    return _result(f.check, Status.OK, f"{shown} ({'; '.join(parts)})", at, f.gpu, evidence)


@dataclass(frozen=True)
class Floor:
    gbps: float
    source: str  # "h100_sxm, 8 GPUs, >= 16 GiB" or "config"


def judge_nccl(
    out: nccl.Output, *, returncode: int, ngpus: int, floor: Floor | None, at: datetime
) -> CheckResult:
    row = out.largest
    busbw = row.busbw if row is not None else out.avg_busbw_gbps
    evidence: dict[str, Any] = {
        BUSBW_GBPS: busbw,
        "avg_busbw_gbps": out.avg_busbw_gbps,
        "bytes": row.size if row is not None else None,
        "wrong": out.wrong,
        "out_of_bounds": out.out_of_bounds,
        "gpus": out.devices or ngpus,
        "floor_gbps": floor.gbps if floor else None,
        "floor_source": floor.source if floor else None,
        "returncode": returncode,
    }
    if out.failure:
        evidence["failure"] = out.failure
    if out.wrong > 0:
        summary = f"all_reduce_perf: {out.wrong} wrong values (corrupted data between GPUs)"
        return _fault(CHECK_NCCL, summary, at, None, evidence)
    if busbw is None or returncode != 0:
        why = out.failure or (f"exited {returncode}" if returncode else "no results printed")
        return _result(CHECK_NCCL, Status.UNKNOWN, f"all_reduce_perf: {why}", at, None, evidence)
    shown = f"all_reduce_perf: bus bandwidth {busbw:,.1f} GB/s on {evidence['gpus']} GPUs"
    if floor is None:
        return _result(
            CHECK_NCCL, Status.OK, f"{shown} (no floor for this node)", at, None, evidence
        )
    if busbw < floor.gbps:
        summary = f"{shown}, under the floor of {floor.gbps:g} GB/s ({floor.source})"
        return _fault(CHECK_NCCL, summary, at, None, evidence)
    summary = f"{shown}, floor {floor.gbps:g} GB/s ({floor.source})"
    return _result(CHECK_NCCL, Status.OK, summary, at, None, evidence)


def judge_gpu_burn(
    out: gpu_burn.Output, gpus: Sequence[GpuIdentity], seconds: int, at: datetime
) -> list[CheckResult]:
    if out.tested is None or not out.verdicts:
        why = out.problem or "ended without a verdict"
        return [_result(CHECK_GPU_BURN, Status.UNKNOWN, f"gpu_burn: {why}", at, None, {})]
    results = []
    for index, ok in sorted(out.verdicts.items()):
        gpu = _burn_identity(index, out.devices.get(index), gpus)
        evidence = {"verdict": "OK" if ok else "FAULTY", "seconds": seconds, "tested": out.tested}
        if ok and out.init_failed:
            summary = f"{_where(gpu)}: gpu_burn said OK but could not start ({out.problem})"
            results.append(_result(CHECK_GPU_BURN, Status.UNKNOWN, summary, at, gpu, evidence))
        elif ok:
            summary = f"{_where(gpu)}: gpu_burn OK after {seconds} s"
            results.append(_result(CHECK_GPU_BURN, Status.OK, summary, at, gpu, evidence))
        else:
            summary = f"{_where(gpu)}: gpu_burn FAULTY (wrong results under load)"
            results.append(_fault(CHECK_GPU_BURN, summary, at, gpu, evidence))
    return results


def unsupported(check: str, why: str, at: datetime) -> CheckResult:
    return _result(check, Status.UNSUPPORTED, why, at, None, {})


def unknown(check: str, why: str, at: datetime, gpu: GpuIdentity | None = None) -> CheckResult:
    return _result(check, Status.UNKNOWN, why, at, gpu, {})


def _burn_identity(
    index: int, device: gpu_burn.Device | None, gpus: Sequence[GpuIdentity]
) -> GpuIdentity:
    """The GPU gpu_burn calls ``index``: by UUID, else by index unless the UUIDs differ."""
    if device is not None:
        same = next((g for g in gpus if g.uuid and g.uuid.lower() == device.uuid), None)
        if same is not None:
            return same
    at_index = next((g for g in gpus if g.index == index), None)
    if at_index is not None and (device is None or at_index.uuid is None):
        return at_index
    if device is not None:
        return GpuIdentity(index=index, uuid=device.uuid, name=device.name)
    return GpuIdentity(index=index)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(key: str, ref: float, ratio: float, model: GpuModel | None) -> str:
    label = _label(key) + (f" {model.label}" if key == "expected" and model else "")
    return f"{ratio:.0%} of {label} {ref:,.1f}"


def _label(key: str) -> str:
    return key.replace("_", " ")


def _where(gpu: GpuIdentity | None) -> str:
    if gpu is None:
        return "node"
    return f"GPU {gpu.index}" + (f" ({gpu.pci_bus_id})" if gpu.pci_bus_id else "")


def _fault(
    check: str, summary: str, at: datetime, gpu: GpuIdentity | None, evidence: dict[str, Any]
) -> CheckResult:
    return CheckResult(
        check=check,
        status=Status.FAIL,
        action=Action.DRAIN,
        category=Category.PERF_DEGRADED,
        summary=summary[:500],
        gpu=gpu,
        evidence=evidence,
        observed_at=at,
    )


def _result(
    check: str,
    status: Status,
    summary: str,
    at: datetime,
    gpu: GpuIdentity | None,
    evidence: dict[str, Any],
) -> CheckResult:
    return CheckResult(
        check=check,
        status=status,
        summary=summary[:500],
        gpu=gpu,
        evidence=evidence,
        observed_at=at,
    )
