"""The xid check on snapshots built directly."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from hpresil.checks.xid import XidCheck
from hpresil.kernlog.parse import LineParser
from hpresil.vocab import Action, Category, CheckResult, Status, XidEvent
from hpresil.vocab.snapshot import Snapshot
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


# --- lines as the driver prints them, through the parser -------------------------

FIXTURES = Path(__file__).parents[2] / "fixtures" / "xid"


def _parsed(*lines: str, at: datetime = AT) -> tuple[XidEvent, ...]:
    parser = LineParser()
    return tuple(e for line in lines if (e := parser.feed(line, at)))


def _fixture_lines(name: str, numbers: list[int]) -> list[str]:
    lines = (FIXTURES / name).read_text().splitlines()
    return [lines[n - 1] for n in numbers]


def test_a_fatal_sxid_drains_as_an_nvswitch_fault_without_a_gpu() -> None:
    (event,) = _parsed(*_fixture_lines("lines.txt", [6, 7, 8]))
    results = XidCheck().evaluate(snapshot(events=(event,)))
    (result,) = _events(results)
    assert (result.status, result.action, result.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.NVLINK_NVSWITCH,
    )
    assert result.gpu is None and result.xid == 20034
    assert result.evidence["kind"] == "sxid" and result.evidence["switch"] == 1
    assert result.summary == (
        "SXid 20034 (fatal) on NVSwitch 1 (0000:06:00): Fatal, Link 48 LTSSM Fault Up"
    )
    assert len(results) == 9  # every GPU stays quiet; the node-level quiet one is left out


def test_a_non_fatal_sxid_is_watched() -> None:
    (event,) = _parsed(*_fixture_lines("recorded.txt", [13]))
    (result,) = _events(XidCheck().evaluate(snapshot(events=(event,))))
    assert (result.status, result.action) == (Status.WARN, Action.WATCH)
    assert "(non-fatal)" in result.summary


def test_xid_45_takes_its_roots_category_but_never_drains() -> None:
    events = _parsed(*_fixture_lines("recorded.txt", [1, 17]), at=AT)
    caused, plain = (e.model_copy(update={"pci_bus_id": "0000:5d:00"}) for e in events)
    results = _events(XidCheck().evaluate(snapshot(events=(caused, plain))))
    assert [(r.status, r.action, r.category) for r in results] == [
        (Status.OK, Action.NONE, Category.NVLINK_NVSWITCH),  # caused by previous Xid 149
        (Status.OK, Action.NONE, Category.APP),  # no root named
    ]
    assert "caused by XID 149" in results[0].evidence["why"]
    assert results[0].evidence["root_xid"] == 149


def test_xid_154_follows_the_xid_before_it_on_the_same_gpu() -> None:
    """The GB200 sequence of lines.txt 14-16: 149 then 154 on 0009:01:00."""
    events = _parsed(*_fixture_lines("lines.txt", [14, 15, 16]))
    results = _events(XidCheck().evaluate(snapshot(events=events)))
    assert [(r.xid, r.action, r.category) for r in results] == [
        (149, Action.RESET_GPU, Category.NVLINK_NVSWITCH),
        (154, Action.RESET_GPU, Category.NVLINK_NVSWITCH),  # 0x4 Drain and Reset, after 149
        (154, Action.RESET_GPU, Category.UNKNOWN),  # 0x1 GPU Reset; nothing before it
    ]
    assert "recovery action 4 (Drain and Reset)" in results[1].evidence["why"]


def test_xid_154_does_not_follow_an_xid_long_before_it() -> None:
    check = XidCheck()
    (first,) = _parsed("NVRM: Xid (PCI:0000:5d:00): 79, GPU has fallen off the bus.")
    check.evaluate(snapshot(events=(first,)))
    later = AT + timedelta(hours=1)
    (event,) = _parsed(
        "NVRM: Xid (PCI:0000:5d:00): 154, GPU recovery action changed from 0x0 (None) to "
        "0x2 (Node Reboot Required)",
        at=later,
    )
    (result,) = _events(check.evaluate(snapshot(events=(event,))))
    assert (result.action, result.category) == (Action.REBOOT, Category.UNKNOWN)


def test_nvlink5_xids_drain_when_fatal_and_are_watched_when_not() -> None:
    events = _parsed(*_fixture_lines("recorded.txt", [18, 19, 20]))
    results = _events(XidCheck().evaluate(snapshot(events=events)))
    assert [(r.xid, r.status, r.action) for r in results] == [
        (144, Status.WARN, Action.WATCH),
        (145, Status.WARN, Action.WATCH),
        (149, Status.FAIL, Action.RESET_GPU),
    ]


def test_a_mig_xid_names_its_instances() -> None:
    (event,) = _parsed("NVRM: Xid (PCI:0000:5d:00 GPU-I:01 GPU-CI:02): 13, pid=1, name=a, Boom")
    (result,) = _events(XidCheck().evaluate(snapshot(events=(event,))))
    assert result.summary.startswith("XID 13 Graphics engine exception on GPU 3 (0000:5d:00)")
    assert "GPU-I 1 GPU-CI 2" in result.summary
    assert (result.evidence["gpu_instance"], result.evidence["compute_instance"]) == (1, 2)


def test_without_nvml_the_kernel_logs_identity_is_the_evidence() -> None:
    uuid = "GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b"
    events = _parsed(*_fixture_lines("lines.txt", [1, 2, 3, 4, 5]))
    snap = Snapshot(node="node1", taken_at=AT, gpu_error="NVML: GPU is lost", xid_events=events)
    (result,) = _events(XidCheck().evaluate(snap))
    assert result.gpu is None and result.action is Action.REBOOT
    assert (result.evidence["gpu_uuid"], result.evidence["gpu_serial"]) == (uuid, "1653723052734")


def test_the_kernel_logs_serial_completes_an_nvml_identity_without_one() -> None:
    samples = gpus()
    ident = samples[3].identity.model_copy(update={"serial": None})
    samples = (*samples[:3], replace(samples[3], identity=ident), *samples[4:])
    event = xid(79, "0000:5d:00").model_copy(update={"gpu_serial": "1653723052734"})
    (result,) = _events(XidCheck().evaluate(snapshot(gpu_samples=samples, events=(event,))))
    assert result.gpu is not None
    assert (result.gpu.index, result.gpu.serial) == (3, "1653723052734")
