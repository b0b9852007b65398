"""The one error boundary: known errors are one ``hpresil: …`` line and an exit code."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from hpresil.cli.main import main


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_missing_explicit_config_is_exit_2_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["--config", str(missing), "status"]) == 2
    assert stderr_lines(capsys) == [f"hpresil: config {missing}: file not found"]


def test_unknown_key_is_exit_2_and_names_the_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hpresil.toml"
    path.write_text('[agent.gpu]\nbackend = "nvml"\ncolour = "green"\n')
    assert main(["--config", str(path), "status"]) == 2
    (line,) = stderr_lines(capsys)
    assert line == f"hpresil: config {path}: agent.gpu.colour: unknown key"


def test_unreachable_controller_is_exit_1_without_traceback(
    config_for: Callable[[str, int], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert main(["--config", str(config_for(url, 0o600)), "status"]) == 1
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"hpresil: controller {url} unreachable")
    assert "Traceback" not in line


def test_token_file_others_can_read_is_exit_2_asking_for_chmod_600(
    tmp_path: Path, config_for: Callable[[str, int], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_for(f"http://127.0.0.1:{closed_port()}", 0o644)
    assert main(["--config", str(path), "incidents"]) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"hpresil: token file {tmp_path / 'token'}: mode 0644")
    assert f"chmod 600 {tmp_path / 'token'}" in line
