"""``hpresil checkpoint``: which checkpoint under a directory a job can resume from.

``latest`` prints the newest complete checkpoint (exit 0), or says there is none (exit
1); ``list`` shows every candidate, newest first, with the reason any was rejected.
Formats are detected from the names on disk (:mod:`hpresil.ckpt`); a bad directory is
exit 2. Neither command needs the controller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import BaseModel, ConfigDict

from hpresil.ckpt import Checkpoint, Format, latest, scan
from hpresil.cli.output import emit_json, json_option, styled, table, when
from hpresil.errors import HpresilError

_DIR = click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
_HASHES = click.option(
    "--verify-hashes", is_flag=True, help="Also check the sha256s an hpresil manifest records."
)


class CheckpointRow(BaseModel):
    """One checkpoint, as ``--json`` prints it."""

    model_config = ConfigDict(frozen=True)

    path: str
    step: int | None
    format: Format
    complete: bool
    reason: str | None
    committed_at: float | None

    @classmethod
    def of(cls, ck: Checkpoint) -> CheckpointRow:
        return cls(
            path=str(ck.path),
            step=ck.step,
            format=ck.format,
            complete=ck.complete,
            reason=ck.reason,
            committed_at=ck.committed_at,
        )


@click.group()
def checkpoint() -> None:
    """Find the checkpoint a job can resume from."""


@checkpoint.command(name="latest")
@_DIR
@_HASHES
@json_option
def latest_cmd(directory: Path, verify_hashes: bool, as_json: bool) -> None:
    """Print the newest complete checkpoint under DIR: path, step, format (tab-separated).

    Exit 1 when DIR holds no complete checkpoint, 2 when DIR is not a readable
    directory."""
    found = latest(directory, verify_hashes=verify_hashes)
    if found is None:
        raise HpresilError(f"no complete checkpoint under {directory}")
    if as_json:
        emit_json(CheckpointRow.of(found))
    else:
        step = "-" if found.step is None else str(found.step)
        click.echo(f"{found.path}\t{step}\t{found.format.value}")


@checkpoint.command(name="list")
@_DIR
@_HASHES
@json_option
def list_cmd(directory: Path, verify_hashes: bool, as_json: bool) -> None:
    """List every checkpoint under DIR, newest first, and why any was rejected."""
    rows = scan(directory, verify_hashes=verify_hashes)
    if as_json:
        emit_json([CheckpointRow.of(ck) for ck in rows])
    elif not rows:
        click.echo(f"no checkpoint found under {directory}")
    else:
        _table(directory, rows)


def _table(directory: Path, rows: list[Checkpoint]) -> None:
    table(
        f"Checkpoints under {directory}",
        ["path", "step", "format", "complete", "committed", "reason"],
        [
            [
                _relative(directory, ck.path),
                "-" if ck.step is None else str(ck.step),
                ck.format.value,
                styled("yes", "green") if ck.complete else styled("no", "bold red"),
                when(None if ck.committed_at is None else _utc(ck.committed_at)),
                ck.reason or "",
            ]
            for ck in rows
        ],
    )


def _relative(directory: Path, path: Path) -> str:
    try:
        return str(path.relative_to(directory)) if path != directory else str(path)
    except ValueError:
        return str(path)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


COMMANDS = [checkpoint]
