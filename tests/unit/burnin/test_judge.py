"""Figures against the expected figure, the fleet median and the node median."""

from __future__ import annotations

import re

import pytest

from hpresil.burnin.expected import MODELS, model_for
from hpresil.burnin.judge import Figure, judge_figure
from hpresil.vocab import Action, Category, GpuIdentity, Status
from tests.unit.burnin.fakes import T0, fixture

GPU = GpuIdentity(index=3, pci_bus_id="0000:1a:00", name="NVIDIA H100 80GB HBM3", serial="1650")
H100 = model_for("NVIDIA H100 80GB HBM3")


def figure(value: float, **refs: float | None) -> Figure:
    return Figure(
        "burnin_matmul", "tflops", "TFLOPS", value, GPU, H100, evidence={"dtype": "bf16"}, **refs
    )


def test_below_ninety_percent_of_the_expected_figure_fails_and_drains() -> None:
    r = judge_figure(figure(612.0, expected=795.0), 0.9, T0)
    assert (r.status, r.action, r.category) == (Status.FAIL, Action.DRAIN, Category.PERF_DEGRADED)
    assert r.gpu == GPU and r.check == "burnin_matmul" and r.observed_at == T0
    assert r.summary == (
        "GPU 3 (0000:1a:00): 612.0 TFLOPS is 77% of the expected, under 90% "
        "(77% of expected H100 SXM 795.0)"
    )
    assert r.evidence == {
        "tflops": 612.0,
        "expected": 795.0,
        "fleet_median": None,
        "node_median": None,
        "ratio_expected": 0.7698,
        "ratio_fleet_median": None,
        "ratio_node_median": None,
        "ratio": 0.7698,
        "threshold": 0.9,
        "model": "h100_sxm",
        "dtype": "bf16",
    }


def test_at_the_threshold_is_still_healthy() -> None:
    r = judge_figure(figure(90.0, expected=100.0), 0.9, T0)
    assert r.status is Status.OK and r.action is Action.NONE and r.category is None


def test_above_the_expected_figure_but_below_the_fleet_median_fails() -> None:
    r = judge_figure(figure(760.0, expected=795.0, fleet_median=900.0), 0.9, T0)
    assert r.status is Status.FAIL
    assert "84% of the fleet median" in r.summary and "96% of expected H100 SXM" in r.summary
    assert r.evidence["ratio"] == r.evidence["ratio_fleet_median"] == pytest.approx(0.8444)
    assert r.evidence["fleet_median"] == 900.0


def test_a_gpu_slower_than_its_node_mates_fails_on_the_node_median() -> None:
    r = judge_figure(figure(700.0, node_median=790.0), 0.9, T0)
    assert r.status is Status.FAIL and "89% of the node median" in r.summary


def test_healthy_against_every_reference() -> None:
    r = judge_figure(figure(790.0, expected=795.0, fleet_median=780.0, node_median=785.0), 0.9, T0)
    assert r.status is Status.OK
    assert r.summary == (
        "GPU 3 (0000:1a:00): 790.0 TFLOPS (99% of expected H100 SXM 795.0; "
        "101% of fleet median 780.0; 101% of node median 785.0)"
    )


def test_a_figure_without_any_reference_is_measured_but_not_judged() -> None:
    r = judge_figure(figure(512.0), 0.9, T0)
    assert r.status is Status.UNKNOWN and r.action is Action.NONE
    assert "not judged" in r.summary and r.evidence["tflops"] == 512.0
    assert r.evidence["ratio"] is None


# --- expected figures per model ---
@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("NVIDIA H100 80GB HBM3", "h100_sxm"),
        ("NVIDIA H200", "h200_sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100_sxm_80gb"),
        ("NVIDIA H100 PCIe", None),
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H200 NVL", None),
        ("NVIDIA A100-SXM4-40GB", None),
        ("NVIDIA GH200 120GB", None),
        ("", None),
        (None, None),
    ],
)
def test_gpu_names_map_to_models(name: str | None, key: str | None) -> None:
    found = model_for(name)
    assert (found.key if found else None) == key


@pytest.mark.parametrize(
    "name", ["nccl/h100-16gpu-2node-8b-8g-ok.txt", "nccl/h200-16gpu-2node-1g-16g-ok.txt"]
)
def test_names_as_real_drivers_print_them_are_recognised(name: str) -> None:
    devices = re.findall(r"\] (NVIDIA .+)$", fixture(name), re.MULTILINE)
    assert devices and all(model_for(d) is not None for d in devices)


def test_every_model_has_sane_figures() -> None:
    for m in MODELS:
        assert m.matmul_tflops is None or 0 < m.matmul_tflops <= m.bf16_peak_tflops, m.key
        assert m.membw_gbps is None or 0 < m.membw_gbps <= m.hbm_spec_gbps, m.key
