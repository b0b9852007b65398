"""The one subprocess runner: typed errors, timeouts that kill the whole group."""

import sys
import time

import psutil
import pytest

from hpresil.adapters import proc
from hpresil.errors import CommandError, SlurmError


def test_output_and_exit_code() -> None:
    done = proc.run([sys.executable, "-c", "print('hi')"], timeout=10)
    assert done.stdout == "hi\n" and done.returncode == 0


def test_failure_carries_argv_rc_and_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('bad node\\n'); sys.exit(3)"]
    with pytest.raises(SlurmError) as info:
        proc.run(argv, timeout=10, error=SlurmError)
    err = info.value
    assert (err.argv, err.returncode, err.stderr) == (argv, 3, "bad node\n")
    assert "exited 3: bad node" in str(err)


def test_missing_program_is_a_typed_error() -> None:
    with pytest.raises(CommandError, match="could not be started"):
        proc.run(["/nonexistent/sinfo"], timeout=1)


def test_hung_command_and_its_children_are_killed(tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s") as info:
        proc.run(["sh", "-c", script], timeout=0.5)
    assert info.value.timed_out
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if _gone(child):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the hung command's child survived the timeout")


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie its new parent (init) has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
