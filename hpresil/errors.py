"""The one error hierarchy. The CLI's boundary prints ``hpresil: <message>`` for these
and a traceback only for anything else (a bug)."""

from __future__ import annotations

from collections.abc import Sequence


class HpresilError(Exception):
    """A known failure with a message fit for one line. ``exit_code`` for the CLI."""

    exit_code = 1


class ConfigError(HpresilError):
    """Configuration missing or invalid; the message names the file and key path."""

    exit_code = 2


class UsageError(HpresilError):
    exit_code = 2


class CommandError(HpresilError):
    """An external command failed or timed out."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        timed_out: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.timeout = timeout
        if timed_out:
            what = f"timed out after {timeout:g} s"
        elif returncode is None:
            what = "could not be started"
        else:
            what = f"exited {returncode}"
        detail = (stderr or stdout).strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        super().__init__(f"`{' '.join(self.argv)}` {what}{tail}")


class SlurmError(CommandError):
    """A Slurm client command failed or timed out: Slurm may answer a later try."""


class SlurmUnavailable(SlurmError):
    """Slurm's client exited 0 but answered with an ``errors`` array instead of data:
    what ``sinfo --json`` and ``squeue --json`` print while slurmctld cannot be reached
    (22.05: ``"Unspecified error"`` after about 9 s). Retryable, like any SlurmError."""

    def __init__(
        self, argv: Sequence[str], reported: str, stdout: str = "", stderr: str = ""
    ) -> None:
        super().__init__(argv, 0, stdout, stderr)
        self.reported = reported
        Exception.__init__(self, f"`{' '.join(self.argv)}` answered with an error: {reported}")


class SlurmParseError(HpresilError):
    """Slurm answered with output this adapter does not understand (not JSON, or not
    the shape of any Slurm version it knows): retrying will not help."""


class GpuError(HpresilError):
    """The GPU adapter could not answer (driver not loaded, library missing)."""


class ControllerUnavailable(HpresilError):
    """The controller could not be reached, or said it cannot serve now (408, 429, 502,
    503, 504): nothing is wrong with the request, so the same request may succeed later."""


class RejectedByController(HpresilError):
    """The controller refused a request (4xx); retrying the same request will not help."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(f"controller refused the request ({status_code}): {message}")


class ControllerFailed(HpresilError):
    """The controller failed on this request (500 and the other server errors that are
    not about availability): the request may succeed later, or keep failing."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(f"controller failed on the request ({status_code}): {message}")


class DatabaseCorrupt(HpresilError):
    """The controller's database is damaged (SQLite's ``SQLITE_CORRUPT`` or ``NOTADB``,
    PostgreSQL's SQLSTATE class XX): not contention, so retrying will not help; restore
    it from a backup or move it aside."""
