"""The fabric check."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.fabric import FabricCheck
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import Fabric, FabricState
from tests.unit.gpu.samples import H100, REAL, h100s, real, snap


def test_completed_fabric_passes_and_unmanaged_gpus_are_unsupported() -> None:
    assert {r.status for r in FabricCheck().evaluate(snap(h100s()))} == {Status.OK}
    # the H100 HGX recording: Completed/Success; every other recording: fabric N/A
    expected = {H100: Status.OK}
    for name in REAL:
        status = FabricCheck().evaluate(snap(real(name)))[0].status
        assert status is expected.get(name, Status.UNSUPPORTED), name


def test_in_progress_or_failed_status_drains() -> None:
    gpu = h100s()[0]
    stuck = replace(gpu, fabric=Fabric(state=FabricState.IN_PROGRESS))
    (r,) = FabricCheck().evaluate(snap([stuck]))
    assert (r.status, r.action, r.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.NVLINK_NVSWITCH,
    )
    assert "in_progress" in r.summary
    failed = replace(gpu, fabric=Fabric(state=FabricState.COMPLETED, status="timeout"))
    (r2,) = FabricCheck().evaluate(snap([failed]))
    assert r2.status is Status.FAIL and r2.evidence["status"] == "timeout"
