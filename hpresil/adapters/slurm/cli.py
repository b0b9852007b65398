"""The default Slurm backend: Slurm's own client commands.

Reads use ``sinfo -N --json`` and ``squeue --json``; writes use ``scontrol update``
and ``scontrol requeue``. Every call goes through :func:`hpresil.adapters.proc.run`
with a timeout and raises :class:`~hpresil.errors.SlurmError` on failure: a non-zero
exit, a timeout, or (:class:`~hpresil.errors.SlurmUnavailable`) JSON that carries an
``errors`` array instead of data, which is how the JSON readers answer, with exit 0,
while slurmctld cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpresil.adapters import proc
from hpresil.adapters.slurm import parse
from hpresil.adapters.slurm.model import SlurmJob, SlurmNode
from hpresil.errors import SlurmError, SlurmUnavailable

_NOT_FOUND = " not found"  # scontrol show node: "Node gpu9 not found", exit code 1


class CliBackend:
    def __init__(
        self, *, bin_dir: Path | None = None, conf: Path | None = None, timeout: float = 10.0
    ) -> None:
        self._bin = bin_dir
        self._env = {"SLURM_CONF": str(conf)} if conf else None
        self._timeout = timeout

    def nodes(self) -> list[SlurmNode]:
        return parse.nodes(self._read("sinfo", "-N", "--json"))

    def node(self, name: str) -> SlurmNode | None:
        """One node alone (``sinfo --json`` lists every node whatever ``--nodes``
        says: some 26 MB at 20,000 nodes); None when Slurm has no such node."""
        try:
            done = self._call("scontrol", "show", "node", "-o", name)
        except SlurmError as exc:
            if _NOT_FOUND in (exc.stderr or "") + (exc.stdout or ""):
                return None
            raise
        return parse.node_line(done.stdout, name)

    def jobs(self) -> list[SlurmJob]:
        return parse.jobs(self._read("squeue", "--json"))

    def set_node_state(self, node: str, state: str, reason: str | None = None) -> None:
        args = ["update", f"nodename={node}", f"state={state}"]
        if reason is not None:
            args.append(f"reason={reason}")
        self._run("scontrol", *args)

    def reboot(self, node: str, reason: str) -> None:
        # ASAP: drains it and reboots once no job runs there; nextstate=DOWN: it comes
        # back DOWN, taking no job, with the reason kept (a bare ASAP stores RESUME
        # before 24.05.3 and the drain is lost: ../shared/reference/slurm-ops.md)
        self._run("scontrol", "reboot", "ASAP", "nextstate=DOWN", f"reason={reason}", node)

    def requeue(self, job_id: int) -> None:
        self._run("scontrol", "requeue", str(job_id))

    def update_job(self, job_id: int, **fields: str) -> None:
        self._run("scontrol", "update", f"jobid={job_id}", *(f"{k}={v}" for k, v in fields.items()))

    def hold(self, job_id: int) -> None:
        self._run("scontrol", "hold", str(job_id))

    def requeue_hold(self, job_id: int) -> None:
        self._run("scontrol", "requeuehold", str(job_id))

    def signal(self, job_id: int, signal: str) -> None:
        # --full: the batch shell and every step (a job's own trap or its ranks)
        self._run("scancel", "--full", f"--signal={signal}", str(job_id))

    def cancel(self, job_id: int) -> None:
        self._run("scancel", str(job_id))

    def _read(self, command: str, *args: str) -> dict[str, Any]:
        """The JSON a reader printed; its ``errors`` array raises SlurmUnavailable."""
        done = self._call(command, *args)
        data = parse.json_object(done.stdout, command)
        error = parse.reported_error(data)
        if error is not None:
            raise SlurmUnavailable(done.argv, error, done.stdout, done.stderr)
        return data

    def _run(self, command: str, *args: str) -> str:
        return self._call(command, *args).stdout

    def _call(self, command: str, *args: str) -> proc.Completed:
        exe = str(self._bin / command) if self._bin else command
        return proc.run([exe, *args], timeout=self._timeout, env=self._env, error=SlurmError)
