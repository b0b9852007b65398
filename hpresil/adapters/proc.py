"""The one function that runs external commands.

Every command runs in a new session under a hard timeout; on timeout the whole
process group is killed, so a hung client cannot leave children behind. Failures
raise :class:`~hpresil.errors.CommandError` (or the subclass the caller names)
carrying argv, exit code, stdout and stderr.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from hpresil.errors import CommandError


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
    error: type[CommandError] = CommandError,
) -> Completed:
    """Run ``argv`` and return its output; raise ``error`` on timeout, start failure,
    or (with ``check``) a non-zero exit."""
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            start_new_session=True,
        )
    except OSError as exc:
        raise error(argv, None, stderr=str(exc)) from exc
    try:
        out, err = proc.communicate(input=input_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise error(argv, None, out, err, timed_out=True, timeout=timeout) from None
    if check and proc.returncode != 0:
        raise error(argv, proc.returncode, out, err)
    return Completed(tuple(argv), proc.returncode, out, err)


def stream(
    argv: Sequence[str],
    stop: threading.Event,
    *,
    poll_s: float = 0.2,
    error: type[CommandError] = CommandError,
) -> Iterator[str]:
    """Run a long-lived ``argv`` (a follower such as ``journalctl -f``) and yield its
    output lines (stderr merged) until ``stop`` is set; the process group is killed
    when the caller stops or abandons the iterator. Raises ``error`` if the command
    cannot start or exits on its own."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise error(argv, None, stderr=str(exc)) from exc
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    tail: collections.deque[str] = collections.deque(maxlen=5)
    pending = b""
    try:
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], poll_s)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                tail.append(line)
                yield line
        if stop.is_set():
            return
        rc = proc.wait()
        raise error(argv, rc, "\n".join(tail))
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        proc.wait()
        proc.stdout.close()


def _kill_group(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
