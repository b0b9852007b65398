"""``dcgmi``, DCGM's command-line client: the one place hpresil runs it.

Every call goes through :func:`hpresil.adapters.proc.run` under a hard timeout (the
whole process group is killed when it expires). DCGM that is not there is an
answer, not a failure: no ``dcgmi`` on the node, or no host engine to talk to
(exit 235, "unable to establish a connection", "unable to initialize DCGM") gives
:class:`DcgmUnavailable`, and a node without DCGM is never unhealthy for it.

A non-zero exit with a document on stdout is still read: ``dcgmi diag`` exits 226
when a test failed and 205 when a failure has ISOLATE severity (gpu-health.md s4).
A timeout raises :class:`DcgmError`; output that is no DCGM document raises
:class:`~hpresil.dcgm.parse.DcgmParseError`, both with a one-line message.

After a diag timeout the host engine may still be running the tests it started; a
later run then answers "already running" (exit 217), which reads as a runtime error.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from hpresil.adapters import proc
from hpresil.config.dcgm import DIAG_TIMEOUTS_S, DcgmConfig
from hpresil.dcgm.health import parse_health
from hpresil.dcgm.model import DiagReport, HealthReport
from hpresil.dcgm.parse import DcgmParseError, parse_diag
from hpresil.errors import CommandError, HpresilError

EXIT_CONNECTION = 235  # DCGM_ST_CONNECTION_NOT_VALID (-21) as an exit status
_UNREACHABLE = (
    "unable to establish a connection",
    "unable to connect to host engine",
    "unable to initialize dcgm",
    "unable to start an embedded host engine",
    "host engine connection invalid",
)
_NO_WATCHES = "health watches not enabled"


class DcgmError(CommandError):
    """``dcgmi`` timed out or could not be run."""


class HealthWatchesOff(HpresilError):
    """DCGM answers, but no health watch is set (``dcgmi health -s a`` sets them)."""


@dataclass(frozen=True)
class DcgmUnavailable:
    """DCGM cannot answer on this node, and that is not a fault of the node."""

    reason: str


class Dcgmi:
    """Runs ``dcgmi`` (``binary``: a name looked up on ``$PATH`` at each call, or a path)."""

    def __init__(
        self,
        binary: str = "dcgmi",
        *,
        host: str | None = None,
        health_timeout_s: float = 20.0,
        diag_timeouts_s: Mapping[int, float] = DIAG_TIMEOUTS_S,
        diag_timeout_s: float | None = None,
    ) -> None:
        self.binary = binary
        self.host = host
        self.health_timeout_s = health_timeout_s
        self._diag_timeouts = MappingProxyType(dict(diag_timeouts_s))
        self._diag_timeout = diag_timeout_s

    @classmethod
    def from_config(cls, cfg: DcgmConfig) -> Dcgmi:
        return cls(
            cfg.binary,
            host=cfg.host,
            health_timeout_s=cfg.health_timeout_s,
            diag_timeout_s=cfg.diag_timeout_s,
        )

    def diag_timeout(self, level: int, iterations: int = 1) -> float:
        """The hard limit for ``diag(level, iterations)``."""
        if self._diag_timeout is not None:
            return self._diag_timeout
        return self._diag_timeouts[level] * iterations

    def diag(self, level: int = 2, iterations: int = 1) -> DiagReport | DcgmUnavailable:
        """``dcgmi diag -r LEVEL -j [--iterations N]``: takes seconds (level 1) to an
        hour or more (level 4). Run it only on an idle node."""
        if level not in self._diag_timeouts:
            raise HpresilError(f"DCGM diag level must be 1-4, not {level}")
        args = ["diag", "-r", str(level), "-j"]
        if iterations > 1:
            args += ["--iterations", str(iterations)]
        done = self._run(args, self.diag_timeout(level, iterations))
        if isinstance(done, DcgmUnavailable):
            return done
        try:
            return parse_diag(done.stdout, exit_code=done.returncode)
        except DcgmParseError as exc:
            return _unavailable_or_raise(done, exc)

    def health(self) -> HealthReport | DcgmUnavailable:
        """``dcgmi health -c -j``: what the background health watches saw."""
        done = self._run(["health", "-c", "-j"], self.health_timeout_s)
        if isinstance(done, DcgmUnavailable):
            return done
        if _NO_WATCHES in (done.stdout + done.stderr).lower():
            raise HealthWatchesOff("DCGM health watches are not enabled (`dcgmi health -s a`)")
        try:
            return parse_health(done.stdout)
        except DcgmParseError as exc:
            return _unavailable_or_raise(done, exc)

    def enable_health_watches(self) -> DcgmUnavailable | None:
        """``dcgmi health -s a``: watch every subsystem (first results after ~60 s)."""
        done = self._run(["health", "-s", "a"], self.health_timeout_s)
        if isinstance(done, DcgmUnavailable):
            return done
        if done.returncode != 0:
            raise DcgmError(done.argv, done.returncode, done.stdout, done.stderr)
        return None

    def _run(self, args: Sequence[str], timeout: float) -> proc.Completed | DcgmUnavailable:
        exe = shutil.which(self.binary)
        if exe is None:
            return DcgmUnavailable(f"{self.binary} not found (DCGM is not installed)")
        host = ["--host", self.host] if self.host else []
        done = proc.run([exe, *args, *host], timeout=timeout, check=False, error=DcgmError)
        if done.returncode == EXIT_CONNECTION:
            return DcgmUnavailable(f"DCGM host engine not reachable: {_line(done)}")
        return done


def _unavailable_or_raise(done: proc.Completed, exc: DcgmParseError) -> DcgmUnavailable:
    text = (done.stdout + "\n" + done.stderr).lower()
    if any(marker in text for marker in _UNREACHABLE):
        return DcgmUnavailable(f"DCGM not reachable: {_line(done)}")
    command = " ".join(["dcgmi", *done.argv[1:]])
    raise DcgmParseError(f"`{command}` exited {done.returncode}: {exc}") from None


def _line(done: proc.Completed) -> str:
    """The last non-empty line dcgmi wrote, for one-line messages."""
    lines = [x.strip() for x in (done.stderr + "\n" + done.stdout).splitlines() if x.strip()]
    return lines[-1][:200] if lines else f"exit {done.returncode}"
