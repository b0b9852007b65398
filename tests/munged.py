"""A real munged private to the test session: Debian's munge (``scripts/setup``
installs it), started in a temporary folder with its own random key and socket, so
tests never use (or disturb) the host's munged or the lab's.

A plugin: a test module that needs it says ``pytest_plugins = ["tests.munged"]`` (and
imports nothing from here, so that pytest can rewrite its asserts) and takes
``munge_socket``, ``munge_as`` or ``other_munged``; scripts/bench/auth starts one with
:func:`private_munged`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def private_munged() -> Iterator[str]:
    """Start munged on a socket in a new temporary folder; yield the socket's path."""
    root = Path(tempfile.mkdtemp(prefix="hpresil-munge-"))
    root.chmod(0o755)  # the socket must be reachable by every user (runuser -u nobody)
    key = root / "munge.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(1024))
    socket = root / "munge.socket"
    names = {"pid-file": "munged.pid", "seed-file": "munged.seed", "log-file": "munged.log"}
    options = [f"--{option}={root / name}" for option, name in names.items()]
    argv = ["munged", "--force", f"--socket={socket}", f"--key-file={key}", *options]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        _wait_answering(str(socket))
        yield str(socket)
    finally:
        stop = ["munged", "--stop", f"--socket={socket}"]
        subprocess.run(stop, capture_output=True, timeout=30, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _wait_answering(socket: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["munge", "-n", "-S", socket], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"munged on {socket} did not answer within {timeout:g} s")
        time.sleep(0.05)


def as_user(user: str, socket: str, payload: str) -> str:
    """A credential for ``payload`` made by ``user`` (``runuser``: root only)."""
    argv = ["runuser", "-u", user, "--", "munge", "-S", socket]
    done = subprocess.run(argv, input=payload, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="session")
def munge_socket() -> Iterator[str]:
    """The socket of a munged private to this test session."""
    if not (shutil.which("munged") and shutil.which("munge") and shutil.which("unmunge")):
        if os.environ.get("CI"):
            pytest.fail("munge is required in CI (scripts/setup installs it)")
        pytest.skip("munge is not installed (scripts/setup installs it)")
    with private_munged() as socket:
        yield socket


@pytest.fixture
def munge_as(munge_socket: str) -> Callable[[str, str], str]:
    """``munge_as(user, payload)``: a credential ``user`` made on the session's munged
    (skipped unless root: runuser)."""
    if os.geteuid() != 0:
        pytest.skip("making a credential as another user needs root (runuser)")
    return lambda user, payload: as_user(user, munge_socket, payload)


@pytest.fixture
def other_munged(munge_socket: str) -> Iterator[str]:
    """The socket of a second munged, with another key (another cluster's)."""
    with private_munged() as socket:
        yield socket
