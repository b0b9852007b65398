"""``hpresil dcgm parse``: tables for people, --json for machines, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hpresil.cli.dcgm import COMMANDS, dcgm
from hpresil.errors import HpresilError
from tests.unit.dcgm.fakes import FIXTURES


def run(*args: str, stdin: str | None = None) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(dcgm, list(args), input=stdin, env={"COLUMNS": "200"})
    return result.exit_code, result.output, result.exception


def test_the_group_is_exported() -> None:
    assert [dcgm] == COMMANDS and "parse" in dcgm.commands


def test_diag_table_names_verdict_gpus_tests_and_categories() -> None:
    code, out, _ = run("parse", str(FIXTURES / "dcgm4_r3_mixed.json"))
    assert code == 0
    assert "DCGM 4.2.3: FAIL" in out
    assert "failing GPUs: 1, 2" in out
    assert "failing tests: pcie, diagnostic" in out
    assert "categories: pcie_link, hbm_ecc, thermal_power, driver_sw" in out
    assert "skipped tests: eud" in out
    assert "findings" in out and "reset_gpu" in out and "drain" in out
    assert "tests" in out and "targeted_power" in out


def test_diag_json() -> None:
    code, out, _ = run("parse", str(FIXTURES / "dcgm3_vc_r3_pass_with_skip.json"), "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["overall"], data["failing_gpus"], data["failing_tests"]) == ("pass", [], [])
    assert data["skipped_tests"] == ["EUD Test"] and data["format"] == "3.x"


def test_exit_code_option_is_used() -> None:
    path = str(FIXTURES / "dcgm4_issue215_diagnostic_excerpt.json")
    data = json.loads(run("parse", path, "--exit-code", "205", "--json")[1])
    assert data["overall"] == "fail" and data["exit_code"] == 205


def test_health_table_and_json() -> None:
    path = str(FIXTURES / "health_failure.json")
    code, out, _ = run("parse", path)
    assert code == 0 and "DCGM health: FAILURE" in out and "failing GPUs: 1" in out
    assert "Memory system" in out and "drain_now" in out
    data = json.loads(run("parse", path, "--json")[1])
    assert data["overall"] == "failure" and data["failing_gpus"] == [1]


def test_stdin() -> None:
    text = (FIXTURES / "health_vc_healthy.json").read_text()
    code, out, _ = run("parse", "-", stdin=text)
    assert code == 0 and "DCGM health: HEALTHY" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("not json at all\n", "no DCGM diagnostic document"),
        (b"\xff\xfe\x00garbage", "cannot read"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "out.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, _, exc = run("parse", str(path))
    assert code != 0 and isinstance(exc, HpresilError)
    assert message in str(exc) and "\n" not in str(exc)
