"""The dcgm_health and dcgm_diag checks, on snapshots built directly."""

from __future__ import annotations

from types import MappingProxyType

from hpresil.checks.base import CheckRunner, Registry
from hpresil.checks.dcgm_diag import DcgmDiagCheck, run_deep
from hpresil.checks.dcgm_health import DcgmHealthCheck
from hpresil.dcgm.dcgmi import DcgmError, DcgmUnavailable
from hpresil.dcgm.health import parse_health
from hpresil.dcgm.parse import parse_diag
from hpresil.dcgm.sources import DcgmDiag, DcgmHealth
from hpresil.vocab import Action, Category, CheckResult, Status
from hpresil.vocab.snapshot import Check, Snapshot
from tests.unit.checks.builders import AT, gpus
from tests.unit.dcgm.fakes import FakeAdapter, FakeDcgmi, fixture


def snap(
    facts: dict[type, object] | None = None, errors: dict[type, str] | None = None
) -> Snapshot:
    return Snapshot(
        node="node1",
        taken_at=AT,
        gpus=gpus(),
        expected_gpus=8,
        facts=MappingProxyType(facts or {}),
        fact_errors=MappingProxyType(errors or {}),
    )


def by_gpu(results: list[CheckResult]) -> dict[int | None, CheckResult]:
    return {r.gpu.index if r.gpu else None: r for r in results}


# --- dcgm_health ---


def test_both_are_checks_with_their_tiers() -> None:
    health, diag = DcgmHealthCheck(), DcgmDiagCheck()
    assert isinstance(health, Check) and isinstance(diag, Check)
    assert health.tags == frozenset({"continuous"}) and diag.tags == frozenset({"deep"})


def test_health_without_the_source_does_not_run() -> None:
    assert not DcgmHealthCheck().supported(snap())


def test_dcgm_not_available_is_unsupported_never_a_failure() -> None:
    (r,) = DcgmHealthCheck().evaluate(snap({DcgmHealth: DcgmHealth(unavailable="dcgmi not found")}))
    assert (r.status, r.action, r.gpu) == (Status.UNSUPPORTED, Action.NONE, None)
    assert r.summary == "DCGM not available: dcgmi not found"


def test_a_failed_health_query_is_unknown() -> None:
    check = DcgmHealthCheck()
    s = snap(errors={DcgmHealth: "`dcgmi health -c -j` timed out after 20 s"})
    assert check.supported(s)
    (r,) = check.evaluate(s)
    assert r.status is Status.UNKNOWN and "timed out" in r.summary


def test_healthy_node_gives_ok_for_every_gpu() -> None:
    fact = DcgmHealth(report=parse_health(fixture("health_vc_healthy.json")))
    results = DcgmHealthCheck().evaluate(snap({DcgmHealth: fact}))
    assert len(results) == 8 and {r.status for r in results} == {Status.OK}
    assert all(r.gpu is not None and r.gpu.serial for r in results)  # identities from NVML


def test_health_incidents_per_gpu() -> None:
    fact = DcgmHealth(report=parse_health(fixture("health_failure.json")))
    results = by_gpu(DcgmHealthCheck().evaluate(snap({DcgmHealth: fact})))
    assert len(results) == 8
    one = results[1]
    assert (one.status, one.action, one.category) == (
        Status.FAIL,
        Action.DRAIN_NOW,
        Category.HBM_ECC,
    )
    assert "Memory system Failure" in one.summary and "NVLINK system Warning" in one.summary
    assert len(one.evidence["incidents"]) == 2
    zero = results[0]
    assert (zero.status, zero.action, zero.category) == (
        Status.WARN,
        Action.WATCH,
        Category.PCIE_LINK,
    )
    assert results[5].status is Status.OK


def test_health_without_known_gpus_still_answers_for_the_node() -> None:
    fact = DcgmHealth(report=parse_health(fixture("health_vc_healthy.json")))
    s = Snapshot(node="n", taken_at=AT, facts=MappingProxyType({DcgmHealth: fact}))
    (r,) = DcgmHealthCheck().evaluate(s)
    assert (r.status, r.gpu, r.summary) == (Status.OK, None, "DCGM overall health: healthy")


# --- dcgm_diag ---


def test_diag_failure_fails_that_gpu_and_passes_the_others() -> None:
    report = parse_diag(fixture("dcgm4_r2_fail_memory.json"), exit_code=205)
    results = DcgmDiagCheck().evaluate(snap({DcgmDiag: DcgmDiag(level=2, report=report)}))
    found = by_gpu(results)
    assert sorted(found, key=str) == [0, 1, 2, 3, None]
    bad = found[3]
    assert (bad.status, bad.action, bad.category) == (
        Status.FAIL,
        Action.DRAIN_NOW,
        Category.HBM_ECC,
    )
    assert bad.evidence["rma_path"] is True
    assert bad.evidence["findings"][0]["error_severity"] == 2
    assert bad.gpu is not None and bad.gpu.uuid  # the NVML identity of GPU 3
    assert {found[i].status for i in (0, 1, 2)} == {Status.OK}
    assert found[None].status is Status.OK and "fail" in found[None].summary


def test_diag_node_level_findings_and_xid() -> None:
    report = parse_diag(fixture("dcgm4_r3_mixed.json"))
    found = by_gpu(DcgmDiagCheck().judge(DcgmDiag(level=3, report=report), None, AT))
    assert (found[2].action, found[2].xid, found[2].category) == (
        Action.RESET_GPU,
        48,
        Category.HBM_ECC,
    )
    assert found[2].gpu is not None and found[2].gpu.serial == "1653923010002"  # from DCGM
    assert (found[None].status, found[None].action) == (Status.WARN, Action.WATCH)
    assert found[None].evidence["skipped_tests"] == ["eud"]


def test_diag_config_only_findings_do_not_drain() -> None:
    report = parse_diag(fixture("dcgm4_r1_persistence_config.json"), exit_code=226)
    results = DcgmDiagCheck().judge(DcgmDiag(level=1, report=report), None, AT)
    assert not any(r.is_fault for r in results)
    assert {r.status for r in results if r.gpu} == {Status.WARN}


def test_diag_that_did_not_complete_is_unknown() -> None:
    report = parse_diag(fixture("dcgm4_runtime_error.json"), exit_code=217)
    (r,) = DcgmDiagCheck().judge(DcgmDiag(level=2, report=report), None, AT)
    assert r.status is Status.UNKNOWN and "already running" in r.summary


def test_busy_unavailable_and_error() -> None:
    check = DcgmDiagCheck()
    (busy,) = check.judge(DcgmDiag(level=2, busy=True), None, AT)
    assert busy.status is Status.UNKNOWN and "busy" in busy.summary
    (gone,) = check.judge(DcgmDiag(level=2, unavailable="dcgmi not found"), None, AT)
    assert (gone.status, gone.summary) == (
        Status.UNSUPPORTED,
        "DCGM not available: dcgmi not found",
    )
    (err,) = check.judge(None, "`dcgmi diag -r 2 -j` timed out after 600 s", AT)
    assert err.status is Status.UNKNOWN and "timed out" in err.summary


def test_run_deep_on_a_busy_node_does_not_run_dcgmi() -> None:
    adapter = FakeAdapter()
    (r,) = run_deep(adapter, 2, idle=lambda: False, clock=lambda: AT)
    assert r.status is Status.UNKNOWN and adapter.calls == []


def test_run_deep_turns_adapter_errors_into_unknown() -> None:
    adapter = FakeAdapter(DcgmError(["dcgmi", "diag"], None, timed_out=True, timeout=600))
    (r,) = run_deep(adapter, 2, idle=lambda: True, clock=lambda: AT)
    assert r.status is Status.UNKNOWN and "timed out after 600 s" in r.summary


def test_run_deep_with_a_fake_dcgmi(fake_dcgmi: FakeDcgmi) -> None:
    from hpresil.dcgm.dcgmi import Dcgmi

    fake_dcgmi.prints(fixture("dcgm4_r2_fail_memory.json"), rc=205)
    results = run_deep(Dcgmi(), 2, idle=lambda: True, clock=lambda: AT)
    assert [r.gpu.index for r in results if r.is_fault and r.gpu] == [3]
    assert fake_dcgmi.calls() == [["diag", "-r", "2", "-j"]]


def test_run_deep_without_dcgm_is_unsupported() -> None:
    (r,) = run_deep(FakeAdapter(DcgmUnavailable("x")), 1, idle=lambda: True, clock=lambda: AT)
    assert r.status is Status.UNSUPPORTED


def test_checks_run_under_the_runner() -> None:
    fact = DcgmHealth(report=parse_health(fixture("health_failure.json")))
    runner = CheckRunner(Registry([DcgmHealthCheck(), DcgmDiagCheck()]))
    results = runner.run(snap({DcgmHealth: fact}))
    assert {r.check for r in results} == {"dcgm_health"}  # no diag fact: dcgm_diag skipped
