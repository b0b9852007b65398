"""Fixture trees, a hand-driven clock and snapshots carrying host facts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from hpresil.vocab.snapshot import Snapshot

SYSFS = Path(__file__).parents[2] / "fixtures" / "sysfs"
HEALTHY = SYSFS / "infiniband-ndr8"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ib_tree(dest: Path, *overlays: str) -> Path:
    """A copy of the healthy 8-port tree under ``dest`` (made once), with ``overlays``
    (folders of tests/fixtures/sysfs/overlays) copied over it."""
    root = dest / "infiniband"
    if not root.exists():
        shutil.copytree(HEALTHY, root)
    for name in overlays:
        shutil.copytree(SYSFS / "overlays" / name, root, dirs_exist_ok=True)
    return root


def set_port(root: Path, port: str, state: str, phys_state: str) -> None:
    """Rewrite ``port`` ("mlx5_0/1")'s state files, as the kernel would."""
    device, number = port.split("/")
    where = root / device / "ports" / number
    (where / "state").write_text(state + "\n")
    (where / "phys_state").write_text(phys_state + "\n")


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime = AT) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def snapshot(*facts: object, errors: dict[type, str] | None = None) -> Snapshot:
    return Snapshot(
        node="node1",
        taken_at=AT,
        facts=MappingProxyType({type(f): f for f in facts}),
        fact_errors=MappingProxyType(dict(errors or {})),
    )
