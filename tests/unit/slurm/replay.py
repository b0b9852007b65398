"""Slurm's client commands replayed from a recording: ``sinfo``, ``squeue`` and
``scontrol`` scripts that print what the real command printed (stdout, stderr) and
exit with its code, for :class:`~hpresil.adapters.slurm.cli.CliBackend`'s ``bin_dir``.
Each call is appended to ``calls.log`` in that folder (command and arguments)."""

from __future__ import annotations

import shlex
from pathlib import Path

FIX = Path(__file__).parents[2] / "fixtures" / "slurm"
SLURMCTLD_DOWN = FIX / "slurmctld-down"  # recorded with the lab's slurmctld stopped
COMMANDS = ("sinfo", "squeue", "scontrol")
EXTS = ("stdout", "stderr", "rc")


def replay_bin(where: Path, recording: Path = SLURMCTLD_DOWN) -> Path:
    """A folder of scripts answering like ``recording``'s commands; returns it."""
    where.mkdir(parents=True, exist_ok=True)
    for command in COMMANDS:
        out, err, rc = (shlex.quote(str(recording / f"{command}.{e}")) for e in EXTS)
        script = where / command
        log = shlex.quote(str(where / "calls.log"))
        script.write_text(
            f'#!/bin/sh\necho {command} "$@" >> {log}\ncat {out}\ncat {err} >&2\nexit $(cat {rc})\n'
        )
        script.chmod(0o755)
    return where


def calls(where: Path) -> list[str]:
    """The commands run from ``where`` so far, one line each."""
    log = where / "calls.log"
    return log.read_text().splitlines() if log.exists() else []
