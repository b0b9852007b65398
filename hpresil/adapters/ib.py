"""InfiniBand (and RoCE) ports as the kernel shows them in ``/sys/class/infiniband``.

Layout (kernel ``Documentation/ABI/stable/sysfs-class-infiniband`` and
``drivers/infiniband/core/sysfs.c``)::

    <root>/<device>/ports/<n>/state        "4: ACTIVE"
                             /phys_state   "5: LinkUp"
                             /rate         "400 Gb/sec (4X NDR)"
                             /link_layer   "InfiniBand" or "Ethernet" (RoCE)
                             /counters/*   one decimal number each

The error counters are the IB PortCounters at their specification widths and
saturate rather than wrap (``link_downed`` stops at 255, ``symbol_error`` at 65535):
:data:`COUNTER_BITS`. A counter the HCA cannot answer reads ``N/A (no PMA)`` on old
kernels and fails with EINVAL on new ones (restricted physical functions on DGX and
GB200 systems, where every such read also logs a kernel error); those counters are
left out, and a file that failed with EINVAL is not read again.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hpresil.config.host import DEFAULT_ROOT, IB_COUNTERS

# Widths of the saturating PortCounters (sysfs.c PORT_PMA_ATTR); data counters are wider.
COUNTER_BITS: Mapping[str, int] = {
    name: c.bits for name, c in IB_COUNTERS.items() if c.bits is not None
}
STATE_ACTIVE = 4
PHYS_STATE_LINK_UP = 5

_STATE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")
_SKIPPED_ERRNOS = (errno.EINVAL, errno.EACCES, errno.EPERM, errno.EOPNOTSUPP, errno.ENOENT)


@dataclass(frozen=True)
class IbPort:
    """One port of one HCA, as read this time."""

    device: str
    port: int
    link_layer: str = ""
    state_id: int | None = None
    state: str = ""
    phys_state_id: int | None = None
    phys_state: str = ""
    rate_gbps: float | None = None
    rate: str = ""
    counters: Mapping[str, int] = field(default_factory=dict)
    error: str | None = None  # state, phys_state or rate could not be read

    @property
    def name(self) -> str:
        return f"{self.device}/{self.port}"

    @property
    def active(self) -> bool:
        return self.state_id == STATE_ACTIVE and self.phys_state_id == PHYS_STATE_LINK_UP

    @property
    def is_ethernet(self) -> bool:
        return self.link_layer.lower() == "ethernet"

    def saturated(self) -> list[str]:
        """Error counters stuck at their maximum: their increases can no longer be seen."""
        return sorted(
            name
            for name, bits in COUNTER_BITS.items()
            if self.counters.get(name) == (1 << bits) - 1
        )


def parse_state(text: str) -> tuple[int | None, str]:
    """``"4: ACTIVE"`` -> ``(4, "ACTIVE")``; anything else -> ``(None, text)``."""
    found = _STATE.match(text)
    if found is None:
        return None, text.strip()
    return int(found.group(1)), found.group(2)


def parse_rate(text: str) -> float | None:
    """``"400 Gb/sec (4X NDR)"`` -> 400.0; None when the text is not a rate."""
    found = _RATE.match(text)
    return float(found.group(1)) if found else None


def _read(path: Path) -> str:
    return path.read_text(errors="replace").strip()


class IbSysfs:
    """Reads every port under ``root``; a missing root means no InfiniBand devices.

    ``read`` is the one call that touches files (tests pass a fake)."""

    def __init__(self, root: Path = DEFAULT_ROOT, read: Callable[[Path], str] = _read) -> None:
        self.root = Path(root)
        self._read = read
        self._unreadable: set[Path] = set()  # counters that failed with EINVAL

    def ports(self) -> list[IbPort]:
        if not self.root.is_dir():
            return []
        found: list[IbPort] = []
        for device in sorted(p for p in self.root.iterdir() if (p / "ports").is_dir()):
            numbers = sorted(int(p.name) for p in (device / "ports").iterdir() if p.name.isdigit())
            found.extend(self._port(device, n) for n in numbers)
        return found

    def _port(self, device: Path, number: int) -> IbPort:
        where = device / "ports" / str(number)
        counters: dict[str, int] = {}
        try:
            counters = self._counters(where / "counters")
            state_id, state = parse_state(self._read(where / "state"))
            phys_id, phys = parse_state(self._read(where / "phys_state"))
            rate = self._read(where / "rate")
            layer = self._optional(where / "link_layer") or "InfiniBand"
        except OSError as exc:
            return IbPort(device.name, number, counters=counters, error=f"{where}: {exc}")
        return IbPort(
            device=device.name,
            port=number,
            link_layer=layer,
            state_id=state_id,
            state=state,
            phys_state_id=phys_id,
            phys_state=phys,
            rate_gbps=parse_rate(rate),
            rate=rate,
            counters=counters,
        )

    def _optional(self, path: Path) -> str | None:
        try:
            return self._read(path)
        except FileNotFoundError:
            return None

    def _counters(self, folder: Path) -> dict[str, int]:
        if not folder.is_dir():
            return {}
        values: dict[str, int] = {}
        for path in sorted(folder.iterdir()):
            if path in self._unreadable or not path.is_file():
                continue
            try:
                text = self._read(path)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    self._unreadable.add(path)
                if exc.errno in _SKIPPED_ERRNOS:
                    continue
                raise
            if text.isdigit():  # "N/A (no PMA)" and the like are left out
                values[path.name] = int(text)
        return values
