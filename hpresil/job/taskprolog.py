"""Slurm TaskProlog: tell every task of an hpresil job where to resume from.

Slurm runs the TaskProlog as the job's user, with the task's environment, before each
task of each step (the batch script is task 0 of the batch step), and reads its
standard output (slurm.conf(5), TaskProlog; ``_proc_stdout`` in
``src/slurmd/slurmstepd/task.c``):

* ``export NAME=value`` sets ``NAME`` for the task: everything after ``=`` up to the
  end of the line is the value, verbatim — no quoting, so spaces are safe and quotes
  would become part of the value; a value with a line break cannot be passed (refused);
* ``unset NAME`` removes ``NAME`` from the task's environment;
* ``print ...`` writes to the task's output; any other line is ignored.

Since 22.05 the TaskProlog's standard error goes into the same pipe (``run_command``)
and is dropped there, so a problem is written to stderr (for people running it by hand),
to syslog (the node's journal) and, for an hpresil job, as a ``print`` line into the
job's own output (from the first task only). A non-zero exit kills the task
("TaskProlog failed status=N"), so this program always exits 0, gives up after
``TIME_LIMIT_S`` with what it has, and exports at least the restart count.

What it prints:

* ``export HPRESIL_RESTART_COUNT=N`` — always (``SLURM_RESTART_COUNT``, absent → 0);
* ``export HPRESIL_CKPT_DIR=DIR`` — for an hpresil job: ``HPRESIL_CKPT_DIR`` if set,
  else the ``hpresil:ckpt=`` token of the job's comment;
* ``export HPRESIL_RESUME_FROM=PATH`` — the newest complete checkpoint, or
  ``unset HPRESIL_RESUME_FROM`` when there is none (a first run: a value inherited from
  the submitting shell or the batch script must not survive).

Which task does what: the comment is not in a task's environment in 22.05 (Slurm puts
``SLURM_JOB_COMMENT`` only in the Prolog/Epilog environment), so the *first task of a
step* (``SLURM_PROCID`` 0 or unset: the batch script, or rank 0 of an ``srun``) asks
``scontrol show job -o`` for it, under a ``SCONTROL_TIMEOUT_S`` timeout (``SLURM_CONF``
and ``PATH`` come from the task's environment). That is one query per job start: the
batch step exports ``HPRESIL_CKPT_DIR`` into the batch script's environment and every
``srun`` inside inherits it. The first task of a step also takes the generation lease
(``hpresil.ckpt.lease``) *before* choosing the checkpoint; the lease is idempotent per
(job, restart count), so only the batch step's take writes. Jobs started without
``sbatch`` should set ``HPRESIL_CKPT_DIR`` (tasks other than rank 0 do not query Slurm).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import syslog
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from hpresil.ckpt import latest
from hpresil.ckpt.lease import Lease
from hpresil.errors import SlurmError
from hpresil.job.api import restart_count
from hpresil.job.spec import JobSpec, comment_field, parse_comment

TIME_LIMIT_S = 10  # whole program; Slurm itself waits for a TaskProlog forever
SCONTROL_TIMEOUT_S = 3.0
NAME = "hpresil-taskprolog"


def log(message: str) -> None:
    """One diagnostic line on stderr (one write, so it cannot interleave) and in the
    node's syslog: since 22.05 Slurm reads the TaskProlog's stderr with its stdout and
    drops lines that are not ``export``/``unset``/``print``, so stderr alone is lost."""
    with contextlib.suppress(OSError):
        os.write(2, f"{NAME}: {message}\n".encode(errors="replace"))
    syslog.openlog(NAME, syslog.LOG_PID)
    syslog.syslog(syslog.LOG_WARNING, message.replace("\0", ""))


class Exports:
    """The lines for Slurm, printed all at once at the end (or when time runs out).

    Problems are logged; for an hpresil job they also go to the job's own output
    (``print``), from the first task of the step only, so that the owner of a job that
    restarted from scratch can read why."""

    def __init__(self, *, first_task: bool) -> None:
        self.lines: list[str] = []
        self.first_task = first_task
        self.hpresil_job = False  # known once the job's comment or env names hpresil

    def export(self, name: str, value: str) -> None:
        if "\n" in value or "\r" in value:
            self.problem(f"not exporting {name}: Slurm cannot pass a value with a line break")
            return
        self.lines.append(f"export {name}={value}")

    def unset(self, name: str) -> None:
        self.lines.append(f"unset {name}")

    def problem(self, message: str) -> None:
        log(message)
        if self.first_task and self.hpresil_job:
            self.lines.append(f"print {NAME}: {message.replace(chr(10), ' ')}")

    def emit(self) -> None:
        data = "".join(f"{line}\n" for line in self.lines).encode(errors="surrogateescape")
        try:
            while data:
                data = data[os.write(1, data) :]
        except OSError as exc:
            log(f"cannot write to Slurm: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        print(__doc__, file=sys.stderr)
        return 0
    _hold_std_fds()
    env = os.environ
    out = Exports(first_task=env.get("SLURM_PROCID", "0") == "0")
    out.export("HPRESIL_RESTART_COUNT", str(restart_count(env)))
    _arm_alarm(out)
    try:
        _resolve(env, out)
    except Exception as exc:  # a TaskProlog must never fail its task: report, export less
        out.problem(f"{exc.__class__.__name__}: {exc}")
    signal.alarm(0)
    out.emit()
    return 0


def _resolve(env: Mapping[str, str], out: Exports) -> None:
    ckpt_dir = _checkpoint_dir(env, out)
    if ckpt_dir is None:
        return  # not an hpresil job
    out.hpresil_job = True
    out.export("HPRESIL_CKPT_DIR", str(ckpt_dir))
    if not ckpt_dir.is_dir():
        out.unset("HPRESIL_RESUME_FROM")  # a first run: the job creates the directory
        return
    job_id = env.get("SLURM_JOB_ID", "")
    if out.first_task and job_id.isdigit():
        node = env.get("SLURMD_NODENAME") or os.uname().nodename.split(".")[0]
        Lease.take(ckpt_dir, int(job_id), restart_count(env), node)  # before choosing
    found = latest(ckpt_dir)
    if found is None:
        out.unset("HPRESIL_RESUME_FROM")
    else:
        out.export("HPRESIL_RESUME_FROM", str(found.path))


def _checkpoint_dir(env: Mapping[str, str], out: Exports) -> Path | None:
    explicit = env.get("HPRESIL_CKPT_DIR")
    if explicit:
        return Path(explicit).absolute()
    comment = env.get("SLURM_JOB_COMMENT")
    job_id = env.get("SLURM_JOB_ID", "")
    if comment is None and out.first_task and job_id.isdigit():
        comment = scontrol_comment(job_id, env)
    spec, problems = parse_comment(comment or "")
    out.hpresil_job = bool(problems) or spec != JobSpec()
    for problem in problems:
        out.problem(problem)
    return spec.ckpt_dir


def scontrol_comment(job_id: str, env: Mapping[str, str]) -> str | None:
    """The job's comment from ``scontrol show job -o JOB_ID`` (None when it has none)."""
    from hpresil.adapters import proc  # stdlib-only; loaded only when the env lacks the dir

    search = os.pathsep.join(filter(None, [env.get("PATH"), "/usr/bin", "/usr/local/bin"]))
    argv = [shutil.which("scontrol", path=search) or "scontrol", "show", "job", "-o", job_id]
    done = proc.run(argv, timeout=SCONTROL_TIMEOUT_S, env=env, error=SlurmError)
    lines = done.stdout.splitlines()
    mine = [line for line in lines if line.startswith(f"JobId={job_id} ")]
    return comment_field((mine or lines or [""])[0])


def _arm_alarm(out: Exports) -> None:
    def give_up(signum: int, frame: FrameType | None) -> None:
        log(f"gave up after {TIME_LIMIT_S} s (checkpoint directory or Slurm slow?)")
        out.emit()
        os._exit(0)

    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(TIME_LIMIT_S)


def _hold_std_fds() -> None:
    """Before 20.11 Slurm closed the TaskProlog's stdin and stderr: fill the gaps with
    /dev/null so that no file this program opens can land on descriptor 2 and receive
    its diagnostics."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one


if __name__ == "__main__":
    sys.exit(main())
