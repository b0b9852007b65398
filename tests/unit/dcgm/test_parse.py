"""``dcgmi diag -j`` parsing on recorded and hand-written fixtures (tests/fixtures/dcgm,
see SOURCES.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hpresil.dcgm.health import parse_health
from hpresil.dcgm.model import DiagResult
from hpresil.dcgm.parse import DcgmParseError, parse_diag
from hpresil.vocab import Action, Category, Status
from tests.unit.dcgm.fakes import FIXTURES, fixture

EXPECTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "expected.json").read_text())
DIAG_SAMPLES = sorted(k for k, v in EXPECTED.items() if "overall" in v)


@pytest.mark.parametrize("name", DIAG_SAMPLES)
def test_recorded_samples_match_expected_verdicts(name: str) -> None:
    want = EXPECTED[name]
    report = parse_diag(fixture(name))
    assert report.overall.value == want["overall"]
    assert report.failing_gpus == want["failing_gpus"]
    assert report.failing_tests == want["failing_tests"]
    assert report.skipped_tests == want.get("skipped_tests", [])
    assert want["format"].startswith("json-3.x") and report.format == "3.x"


def test_every_expected_sample_is_covered() -> None:
    health = [k for k, v in EXPECTED.items() if v.get("command") == "dcgmi health -c -j"]
    assert sorted(DIAG_SAMPLES + health) == sorted(EXPECTED)
    for name in health:
        report = parse_health(fixture(name))
        assert report.overall == EXPECTED[name]["overall_health"]
        assert report.failing_gpus == EXPECTED[name]["failing_gpus"]


def test_a_skipped_test_is_not_a_failure() -> None:
    report = parse_diag(fixture("dcgm3_vc_r3_pass_with_skip.json"))
    (eud,) = [t for t in report.tests if t.name == "EUD Test"]
    assert eud.result is DiagResult.SKIP and eud.skipped
    assert report.overall is DiagResult.PASS and report.findings == ()
    assert report.gpus == (0,)


def test_recorded_4x_excerpt_reads_entities_and_info_lists() -> None:
    report = parse_diag(fixture("dcgm4_issue215_diagnostic_excerpt.json"))
    assert (report.format, report.overall) == ("4.x", DiagResult.PASS)
    assert report.gpus == tuple(range(8))
    assert [(t.name, t.test_category, t.result) for t in report.tests] == [
        ("diagnostic", "Hardware", DiagResult.PASS)
    ]


def test_4x_memory_failure_with_isolate_severity_drains_now() -> None:
    report = parse_diag(fixture("dcgm4_r2_fail_memory.json"), exit_code=205)
    assert report.overall is DiagResult.FAIL
    assert (report.failing_gpus, report.failing_tests) == ([3], ["memory"])
    assert report.categories == [Category.HBM_ECC]
    (f,) = report.findings
    assert (f.gpu, f.entity, f.test, f.test_category) == (3, "GPU 3", "memory", "Hardware")
    assert (f.error_id, f.error_category, f.error_severity) == (52, 10, 2)
    assert (f.status, f.action, f.category) == (Status.FAIL, Action.DRAIN_NOW, Category.HBM_ECC)
    assert f.message == "Found 2 faulty memory elements on GPU 3"
    assert f.serial == "1653923010003"
    assert (report.version, report.driver_version) == ("4.2.3", "570.148.08")
    assert report.gpus == (0, 1, 2, 3) and report.exit_code == 205


def test_config_severity_fail_is_a_warning_not_a_failure() -> None:
    """Persistence mode off makes DCGM write "Fail" and exit 226; draining every node
    of a fleet for it would be wrong (CONFIG severity: watch)."""
    report = parse_diag(fixture("dcgm4_r1_persistence_config.json"), exit_code=226)
    assert report.overall is DiagResult.WARN
    assert report.failing_gpus == [] and report.failing_tests == []
    assert {(f.gpu, f.status, f.action) for f in report.findings} == {
        (0, Status.WARN, Action.WATCH),
        (1, Status.WARN, Action.WATCH),
    }
    assert report.categories == [Category.DRIVER_SW]


def test_mixed_findings_map_by_category_and_severity() -> None:
    report = parse_diag(fixture("dcgm4_r3_mixed.json"))
    got = {(f.entity, f.test): (f.status, f.action, f.category, f.xid) for f in report.findings}
    assert got == {
        ("GPU 1", "pcie"): (Status.FAIL, Action.DRAIN, Category.PCIE_LINK, None),
        ("GPU 2", "diagnostic"): (Status.FAIL, Action.RESET_GPU, Category.HBM_ECC, 48),
        ("GPU 0", "targeted_power"): (Status.WARN, Action.WATCH, Category.THERMAL_POWER, None),
        ("node", "memory_bandwidth"): (Status.WARN, Action.WATCH, Category.DRIVER_SW, None),
    }
    assert report.overall is DiagResult.FAIL
    assert report.failing_gpus == [1, 2]
    assert report.failing_tests == ["pcie", "diagnostic"]
    assert report.skipped_tests == ["eud"]


def test_runtime_error_is_unknown_never_pass_or_fail() -> None:
    report = parse_diag(fixture("dcgm4_runtime_error.json"), exit_code=217)
    assert report.overall is DiagResult.UNKNOWN
    assert "already running" in (report.runtime_error or "")
    assert report.findings == () and report.tests == ()
    assert "did not complete" in report.summary


def test_iterations_keep_each_runs_findings_and_the_overall_result() -> None:
    report = parse_diag(fixture("dcgm4_iterations_fail.json"), exit_code=205)
    assert (report.iterations, report.overall_result) == (2, "Fail")
    assert report.overall is DiagResult.FAIL
    (f,) = report.findings
    assert (f.iteration, f.gpu, f.action, f.category) == (2, 1, Action.DRAIN_NOW, Category.HBM_ECC)
    assert [t.iteration for t in report.tests] == [1, 1, 2, 2]
    assert report.runtime_error is None  # the failure is explained by a finding


def test_iterations_that_all_pass() -> None:
    one = json.loads(fixture("dcgm4_issue215_diagnostic_excerpt.json"))
    text = json.dumps({"iterations": [one, one, one], "Overall Result": "Pass"})
    report = parse_diag(text)
    assert (report.overall, report.iterations, len(report.tests)) == (DiagResult.PASS, 3, 3)


def test_iterations_fail_without_findings_is_explained_not_passed() -> None:
    """A failed iteration that left no document (its error printed separately)."""
    error = {"DCGM Diagnostic": {"version": "4.2.3", "runtime_error": "Error: NVVS was killed"}}
    iterations = {"iterations": [None], "Overall Result": "Fail", "Warning": "NVVS killed"}
    report = parse_diag(json.dumps(error) + "\n" + json.dumps(iterations), exit_code=203)
    assert report.overall is DiagResult.UNKNOWN
    assert "NVVS was killed" in (report.runtime_error or "")
    assert "NVVS killed" in (report.runtime_error or "")


def test_a_banner_before_the_document_is_skipped() -> None:
    text = "Successfully ran diagnostic for group.\n" + fixture("dcgm3_vc_r2_pass.json")
    assert parse_diag(text).overall is DiagResult.PASS


@pytest.mark.parametrize(
    "text",
    ["", "Error: unable to initialize DCGM\n", '{"DCGM Diagnostic": ', "[1, 2]", '{"x": 1}'],
)
def test_output_without_a_document_is_a_one_line_parse_error(text: str) -> None:
    with pytest.raises(DcgmParseError) as info:
        parse_diag(text)
    assert "\n" not in str(info.value) and "no DCGM diagnostic document" in str(info.value)


def _doc(*results: dict[str, Any], key: str = "DCGM GPU Diagnostic", **test: Any) -> str:
    body = {"name": test.pop("name", "GPU Memory"), "results": list(results), **test}
    return json.dumps({key: {"test_categories": [{"category": "Hardware", "tests": [body]}]}})


@pytest.mark.parametrize("status", ["Skip", "Not Run", "", "skipped"])
def test_skip_not_run_and_empty_status_never_fail(status: str) -> None:
    report = parse_diag(_doc({"gpu_id": "0", "status": status}, {"gpu_id": "1", "status": "Pass"}))
    assert report.overall is DiagResult.PASS and report.findings == ()


def test_an_unknown_status_word_warns_instead_of_passing() -> None:
    report = parse_diag(_doc({"gpu_id": "0", "status": "Inconclusive"}))
    assert report.overall is DiagResult.WARN
    (f,) = report.findings
    assert (f.status, f.action, f.raw_status) == (Status.WARN, Action.WATCH, "Inconclusive")


def test_3x_fail_without_severity_falls_back_on_the_test_name() -> None:
    """gpu-health.md s7: a Fail in memory/pcie/NVLink is drain-now."""
    report = parse_diag(_doc({"gpu_ids": "0,1", "status": "Fail", "warnings": ["bad"]}))
    assert [(f.gpu, f.action, f.category) for f in report.findings] == [
        (0, Action.DRAIN_NOW, Category.HBM_ECC),
        (1, Action.DRAIN_NOW, Category.HBM_ECC),
    ]


def test_3x_deployment_warning_spelled_warnings_is_read() -> None:
    """DCGM 3.x writes a deployment finding's text under "warnings" (Diag.cpp)."""
    warning = {"warnings": "Persistence mode for GPU 0 is disabled.", "error_id": 29}
    warning |= {"error_category": 8, "error_severity": 5}
    text = _doc(
        {"gpu_id": 0, "status": "Fail", "warnings": [warning]},
        name="Persistence Mode",
    )
    (f,) = parse_diag(text).findings
    assert (f.message, f.action, f.category) == (
        "Persistence mode for GPU 0 is disabled.",
        Action.WATCH,
        Category.DRIVER_SW,
    )


def test_a_failed_test_summary_without_entities_is_a_node_finding() -> None:
    text = _doc(key="DCGM Diagnostic", name="pcie", test_summary={"status": "Fail"})
    report = parse_diag(text)
    (f,) = report.findings
    assert (f.entity, f.gpu, f.action) == ("node", None, Action.DRAIN_NOW)
    assert "without a message" in f.message


def test_exit_205_without_an_isolate_finding_still_drains_now() -> None:
    report = parse_diag(fixture("dcgm4_issue215_diagnostic_excerpt.json"), exit_code=205)
    assert report.overall is DiagResult.FAIL
    (f,) = report.findings
    assert (f.entity, f.action) == ("node", Action.DRAIN_NOW)
