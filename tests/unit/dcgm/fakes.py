"""A fake ``dcgmi`` at the process boundary: a small shell script on a temporary
``$PATH`` that logs its arguments, prints a fixture and exits with a given status."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from hpresil.dcgm.dcgmi import DcgmUnavailable
from hpresil.dcgm.model import DiagReport, HealthReport

FIXTURES = Path(__file__).parents[2] / "fixtures" / "dcgm"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class FakeDcgmi:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.log = bin_dir / "argv.log"
        self.path = bin_dir / "dcgmi"

    def script(self, body: str) -> FakeDcgmi:
        """Any shell body; ``$@`` is dcgmi's argument list."""
        log = shlex.quote(str(self.log))
        self.path.write_text(f'#!/bin/sh\necho "$@" >> {log}\n{body}\n')
        self.path.chmod(0o755)
        return self

    def prints(self, text: str, rc: int = 0, stderr: str = "") -> FakeDcgmi:
        out = self.bin_dir / f"out{len(list(self.bin_dir.glob('out*')))}.txt"
        out.write_text(text)
        err = f"echo {shlex.quote(stderr)} >&2\n" if stderr else ""
        return self.script(f"cat {shlex.quote(str(out))}\n{err}exit {rc}")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines()]


@pytest.fixture
def fake_dcgmi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDcgmi:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return FakeDcgmi(bin_dir)


class FakeAdapter:
    """Swaps the dcgmi adapter: answers queued in order, calls counted."""

    health_timeout_s = 1.0

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def _next(self, call: str) -> object:
        self.calls.append(call)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def health(self) -> HealthReport | DcgmUnavailable:
        return self._next("health")  # type: ignore[return-value]

    def enable_health_watches(self) -> DcgmUnavailable | None:
        self.calls.append("enable")
        return None

    def diag_timeout(self, level: int, iterations: int = 1) -> float:
        return 600.0 * iterations

    def diag(self, level: int = 2, iterations: int = 1) -> DiagReport | DcgmUnavailable:
        return self._next(f"diag -r {level} x{iterations}")  # type: ignore[return-value]
