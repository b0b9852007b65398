"""The dcgmi adapter against a fake ``dcgmi`` on a temporary ``$PATH``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from hpresil.config.dcgm import DcgmConfig
from hpresil.dcgm.dcgmi import DcgmError, Dcgmi, DcgmUnavailable, HealthWatchesOff
from hpresil.dcgm.model import DiagReport, DiagResult, HealthReport
from hpresil.dcgm.parse import DcgmParseError
from hpresil.errors import HpresilError
from hpresil.vocab import Action
from tests.unit.dcgm.fakes import FakeDcgmi, fixture


def test_no_dcgmi_on_the_node_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    dcgmi = Dcgmi()
    for answer in (dcgmi.health(), dcgmi.diag(1)):
        assert isinstance(answer, DcgmUnavailable) and "not found" in answer.reason


def test_diag_passes_level_json_and_iterations(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints(fixture("dcgm3_vc_r2_pass.json"))
    report = Dcgmi().diag(2)
    assert isinstance(report, DiagReport) and report.overall is DiagResult.PASS
    Dcgmi(host="10.0.0.5:5555").diag(3, iterations=2)
    assert fake_dcgmi.calls() == [
        ["diag", "-r", "2", "-j"],
        ["diag", "-r", "3", "-j", "--iterations", "2", "--host", "10.0.0.5:5555"],
    ]


def test_a_failed_diag_exit_status_still_gets_its_json_read(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints(fixture("dcgm4_r2_fail_memory.json"), rc=205)
    report = Dcgmi().diag(2)
    assert isinstance(report, DiagReport)
    assert (report.overall, report.failing_gpus, report.exit_code) == (DiagResult.FAIL, [3], 205)
    assert report.findings[0].action is Action.DRAIN_NOW


def test_a_runtime_error_document_is_read(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints(fixture("dcgm4_runtime_error.json"), rc=217)
    report = Dcgmi().diag(1)
    assert isinstance(report, DiagReport) and report.overall is DiagResult.UNKNOWN


@pytest.mark.parametrize(
    ("stdout", "rc"),
    [
        (
            "Error: Unable to connect to host engine. "
            "Host engine connection invalid/disconnected.\n",
            235,
        ),
        ("Error: unable to establish a connection to the specified host: localhost\n", 1),
        ("Error: unable to initialize DCGM\n", 255),
    ],
)
def test_no_host_engine_is_unavailable(fake_dcgmi: FakeDcgmi, stdout: str, rc: int) -> None:
    fake_dcgmi.prints(stdout, rc=rc)
    for answer in (Dcgmi().health(), Dcgmi().diag(1)):
        assert isinstance(answer, DcgmUnavailable), answer
        assert "DCGM" in answer.reason


def test_unparseable_output_is_a_one_line_error(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints("Segmentation fault\n", rc=254, stderr="core dumped")
    with pytest.raises(DcgmParseError) as info:
        Dcgmi().diag(2)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("`dcgmi diag -r 2 -j` exited 254: no DCGM diagnostic document")


def test_a_hung_dcgmi_is_killed_at_the_timeout(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.script("sleep 30")
    start = time.monotonic()
    with pytest.raises(DcgmError) as info:
        Dcgmi(diag_timeout_s=0.5).diag(4)
    assert info.value.timed_out and time.monotonic() - start < 10
    with pytest.raises(DcgmError, match=r"timed out after 0\.5 s"):
        Dcgmi(health_timeout_s=0.5).health()


def test_health_report(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints(fixture("health_failure.json"))
    report = Dcgmi().health()
    assert isinstance(report, HealthReport) and report.failing_gpus == [1]
    assert fake_dcgmi.calls() == [["health", "-c", "-j"]]


def test_health_watches_off_is_its_own_error_and_can_be_enabled(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.script(
        'case "$2" in\n'
        '  -c) echo "Error: Health watches not enabled. Please enable watches."; exit 253;;\n'
        '  -s) echo "Health monitor systems set successfully."; exit 0;;\n'
        "esac"
    )
    with pytest.raises(HealthWatchesOff):
        Dcgmi().health()
    assert Dcgmi().enable_health_watches() is None
    assert fake_dcgmi.calls()[-1] == ["health", "-s", "a"]


def test_timeouts_per_level_and_from_config() -> None:
    dcgmi = Dcgmi()
    assert [dcgmi.diag_timeout(n) for n in (1, 2, 3, 4)] == [120, 600, 2400, 7200]
    assert dcgmi.diag_timeout(2, iterations=3) == 1800
    cfg = DcgmConfig(binary="/opt/dcgm/dcgmi", diag_timeout_s=900, health_timeout_s=5)
    configured = Dcgmi.from_config(cfg)
    assert (configured.binary, configured.diag_timeout(4), configured.health_timeout_s) == (
        "/opt/dcgm/dcgmi",
        900,
        5,
    )


def test_an_invalid_level_is_refused(fake_dcgmi: FakeDcgmi) -> None:
    fake_dcgmi.prints("{}")
    with pytest.raises(HpresilError, match="level must be 1-4"):
        Dcgmi().diag(5)
    assert fake_dcgmi.calls() == []


def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError, match="diag_levle"):
        DcgmConfig.model_validate({"diag_levle": 3})
    with pytest.raises(ValidationError):
        DcgmConfig(diag_level=5)
    with pytest.raises(ValidationError):
        DcgmConfig().diag_level = 3  # type: ignore[misc]
