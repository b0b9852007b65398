"""Simulated InfiniBand for the lab: a sysfs tree in the layout of
``/sys/class/infiniband`` (mlx5 NDR HCAs), and a way to take a port down or up.

The lab's nodes share one machine, so each gets its own tree (``[checks.ib]
sysfs_root = "<lab>/sysfs/{node}"``); the real IB adapter reads it like any sysfs.
This module never writes under ``/sys``.

    python -m hpresil.host.simulated_ib create ROOT [PORTS]
"""

from __future__ import annotations

import sys
from pathlib import Path

from hpresil.adapters.ib import KNOWN_COUNTERS
from hpresil.errors import HpresilError

UP = {"state": "4: ACTIVE", "phys_state": "5: LinkUp", "rate": "400 Gb/sec (4X NDR)"}
DOWN = {"state": "1: DOWN", "phys_state": "3: Disabled", "rate": "10 Gb/sec (4X SDR)"}


def _guard(root: Path) -> Path:
    resolved = root.resolve()
    if resolved == Path("/sys") or Path("/sys") in resolved.parents:
        raise HpresilError(f"{root}: refusing to simulate InfiniBand inside the real /sys")
    return resolved


def create_tree(root: Path, ports: int = 8) -> None:
    """Write ``ports`` healthy single-port HCAs (mlx5_0 ... mlx5_N-1) under ``root``."""
    root = _guard(root)
    for i in range(ports):
        dev = root / f"mlx5_{i}"
        port = dev / "ports" / "1"
        (port / "counters").mkdir(parents=True, exist_ok=True)
        for name, value in {
            "node_type": "1: CA",
            "hca_type": "MT4129",
            "fw_ver": "28.39.2048",
            "board_id": "MT_0000000838",
        }.items():
            (dev / name).write_text(value + "\n")
        for name, value in {**UP, "link_layer": "InfiniBand"}.items():
            (port / name).write_text(value + "\n")
        for counter in KNOWN_COUNTERS:
            (port / "counters" / counter).write_text("0\n")


def set_port(root: Path, port: str, *, up: bool) -> None:
    """Take ``port`` ("mlx5_3/1") down (state DOWN, link_downed + 1) or back up."""
    device, _, number = port.partition("/")
    path = _guard(root) / device / "ports" / (number or "1")
    if not (path / "state").exists():
        raise HpresilError(f"no simulated InfiniBand port {port} under {root}")
    for name, value in (UP if up else DOWN).items():
        (path / name).write_text(value + "\n")
    if not up:
        counter = path / "counters" / "link_downed"
        counter.write_text(f"{int(counter.read_text() or 0) + 1}\n")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "create":
        raise SystemExit(__doc__)
    create_tree(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 8)
