"""The lab's InfiniBand, stood in for at its own boundary: a sysfs tree in the layout
of ``/sys/class/infiniband`` (mlx5 NDR HCAs), and a way to take a port down or up.
Lab tooling, not product: hpresil's real IB adapter reads the tree like any sysfs.

The lab's nodes share one machine, so each gets its own tree (``[checks.ib]
sysfs_root = "<lab>/sysfs/{node}"``). This module never writes under ``/sys``.

    .venv/bin/python scripts/ib_sysfs.py create ROOT [PORTS]
    .venv/bin/python scripts/ib_sysfs.py down|up ROOT mlx5_3/1
"""

from __future__ import annotations

import sys
from pathlib import Path

from hpresil.config.host import KNOWN_COUNTERS

UP = {"state": "4: ACTIVE", "phys_state": "5: LinkUp", "rate": "400 Gb/sec (4X NDR)"}
DOWN = {"state": "1: DOWN", "phys_state": "3: Disabled", "rate": "10 Gb/sec (4X SDR)"}


def _guard(root: Path) -> Path:
    resolved = root.resolve()
    if resolved == Path("/sys") or Path("/sys") in resolved.parents:
        raise ValueError(f"{root}: refusing to write a lab InfiniBand tree inside the real /sys")
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
        raise ValueError(f"no InfiniBand port {port} in the lab tree under {root}")
    for name, value in (UP if up else DOWN).items():
        (path / name).write_text(value + "\n")
    if not up:
        counter = path / "counters" / "link_downed"
        counter.write_text(f"{int(counter.read_text() or 0) + 1}\n")


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "create":
        create_tree(Path(argv[1]), int(argv[2]) if len(argv) > 2 else 8)
    elif len(argv) == 3 and argv[0] in ("down", "up"):
        set_port(Path(argv[1]), argv[2], up=argv[0] == "up")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ValueError as exc:
        raise SystemExit(f"ib_sysfs: {exc}") from None
