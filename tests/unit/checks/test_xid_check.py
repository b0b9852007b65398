"""The xid check on snapshots built directly."""

from __future__ import annotations

from hpresil.checks.xid import XidCheck
from hpresil.vocab import Action, Category, CheckResult, Status
from tests.unit.checks.builders import AT, gpus, snapshot, xid


def _events(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.xid is not None]


def test_without_events_every_gpu_and_the_node_are_quiet() -> None:
    results = XidCheck().evaluate(snapshot())
    assert _events(results) == []
    assert [r.gpu.index if r.gpu else None for r in results] == [*range(8), None]
    assert {r.status for r in results} == {Status.OK}
    assert results[3].summary == "no new XID on GPU 3 (0000:5d:00)"


def test_a_gpu_with_an_event_gets_no_quiet_result() -> None:
    results = XidCheck().evaluate(snapshot(events=(xid(79, "0000:5d:00"),)))
    per_gpu = [(r.gpu.index if r.gpu else None, r.xid) for r in results]
    assert per_gpu.count((3, 79)) == 1 and (3, None) not in per_gpu
    assert len(results) == 9


def test_xid_79_fails_with_reboot_and_the_gpus_identity() -> None:
    line = "NVRM: Xid (PCI:0000:5d:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off."
    event = xid(79, "0000:5d:00", "GPU has fallen off the bus.").model_copy(update={"raw": line})
    (result,) = _events(XidCheck().evaluate(snapshot(events=(event,))))
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.REBOOT,
        Category.GPU_LOST_PCIE,
    )
    assert result.gpu == gpus()[3].identity  # 0000:5d:00 is GPU 3 in the HGX layout
    assert result.xid == 79 and result.is_fault
    assert result.evidence["raw"] == line and result.observed_at == AT
    assert "GPU 3" in result.summary


def test_xid_13_is_ok_and_does_not_drain() -> None:
    (result,) = _events(XidCheck().evaluate(snapshot(events=(xid(13),))))
    assert (result.status, result.action, result.category) == (Status.OK, Action.NONE, Category.APP)
    assert not result.is_fault


def test_xid_63_is_a_warning_to_watch() -> None:
    (result,) = _events(XidCheck().evaluate(snapshot(events=(xid(63),))))
    assert (result.status, result.action) == (Status.WARN, Action.WATCH)


def test_one_result_per_event_in_order() -> None:
    events = (xid(48, "0000:18:00"), xid(13, "0000:2a:00"), xid(4242, "0000:db:00"))
    results = _events(XidCheck().evaluate(snapshot(events=events)))
    assert [(r.xid, r.gpu.index if r.gpu else None) for r in results] == [
        (48, 0),
        (13, 1),
        (4242, 7),
    ]
    assert results[2].status is Status.WARN and results[2].category is Category.UNKNOWN


def test_unknown_pci_id_keeps_the_address_in_the_evidence() -> None:
    results = XidCheck().evaluate(snapshot(events=(xid(79, "0000:77:00"),)))
    (result,) = _events(results)
    assert len(results) == 9  # eight quiet GPUs; the node-level quiet result is left out
    assert result.gpu is None and result.evidence["pci_bus_id"] == "0000:77:00"
    assert result.status is Status.FAIL


def test_identity_comes_from_the_last_good_query_when_nvml_failed() -> None:
    snap = snapshot(
        gpu_samples=(), gpu_error="GPU query did not answer", events=(xid(79, "0000:ab:00"),)
    )
    (result,) = _events(XidCheck().evaluate(snap))
    assert result.gpu is not None and result.gpu.index == 5


def test_xid_154_follows_the_announced_recovery_action() -> None:
    to_reset = "GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)"
    to_reboot = "GPU recovery action changed from 0x0 (None) to 0x2 (Node Reboot Required)"
    to_none = "GPU recovery action changed from 0x1 (GPU Reset Required) to 0x0 (None)"
    events = (xid(154, message=to_reset), xid(154, message=to_reboot), xid(154, message=to_none))
    results = _events(XidCheck().evaluate(snapshot(events=events)))
    assert [(r.status, r.action) for r in results] == [
        (Status.FAIL, Action.RESET_GPU),
        (Status.FAIL, Action.REBOOT),
        (Status.OK, Action.NONE),
    ]
    (odd,) = _events(XidCheck().evaluate(snapshot(events=(xid(154, message="something new"),))))
    assert odd.action is Action.WATCH
