"""Who a GPU is, from the driver's own lines: PCI id -> (UUID, board serial).

Before the first XID of a GPU the driver prints, once per driver load
(``_krcLogUuidOnce`` in NVIDIA's ``kernel_rc.c``)::

    NVRM: GPU at PCI:0000:91:00: GPU-b6c3b2be-c55b-d076-fa0e-d464e4c7e08b
    NVRM: GPU Board Serial Number: 1653723052734

and newer drivers add ``NVRM: GPU 0000:91:00.0: GPU serial number is 1653723052734.``
after a GPU loss. The serial line carries no PCI id: it belongs to the UUID line just
before it. With these an XID names a UUID and serial even when NVML cannot answer
(the GPU fell off the bus, the driver is wedged), which is what an RMA needs.

Placeholders the driver prints when it has no serial (``[N/A]``, ``[not supported]``,
``0``) are not serials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpresil.vocab.gpu import normalize_bus_id

_HEX = "[0-9a-fA-F]"
_BDF = rf"{_HEX}{{4}}:{_HEX}{{2}}:{_HEX}{{2}}"
_SERIAL = r"(?P<serial>\S+?)"

UUID_RE = re.compile(rf"NVRM: GPU at PCI:(?P<bdf>{_BDF}): (?P<uuid>GPU-[0-9a-fA-F-]{{8,}})\s*$")
SERIAL_RE = re.compile(rf"NVRM: GPU Board Serial Number: {_SERIAL}\s*$")
SERIAL_AT_RE = re.compile(
    rf"NVRM: GPU (?P<bdf>{_BDF})(?:\.[0-7])?: GPU serial number is {_SERIAL}\.?\s*$"
)
_VALID_SERIAL = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]*$")


@dataclass(frozen=True)
class GpuIds:
    """What the kernel log said about one GPU."""

    uuid: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class IdentityLine:
    """One identity line: ``bdf`` None for the board-serial line (it follows a UUID line)."""

    bdf: str | None
    uuid: str | None = None
    serial: str | None = None


def parse_identity(message: str) -> IdentityLine | None:
    """The identity in a kernel message (prefixes already stripped), or None."""
    m = UUID_RE.search(message)
    if m is not None:
        return IdentityLine(normalize_bus_id(m.group("bdf")), uuid=m.group("uuid"))
    m = SERIAL_AT_RE.search(message)
    if m is not None:
        serial = _serial(m.group("serial"))
        return IdentityLine(normalize_bus_id(m.group("bdf")), serial=serial) if serial else None
    m = SERIAL_RE.search(message)
    if m is not None:
        serial = _serial(m.group("serial"))
        return IdentityLine(None, serial=serial) if serial else None
    return None


def _serial(text: str) -> str | None:
    if not _VALID_SERIAL.match(text) or not text.strip("0"):
        return None
    return text


class IdentityMap:
    """PCI id -> :class:`GpuIds`, filled line by line.

    A board-serial line is attributed to the GPU of the UUID line seen at most
    ``reach`` lines before it; otherwise it is ignored (another GPU's lines may have
    interleaved, and a wrong serial is worse than none).
    """

    def __init__(self, reach: int = 4) -> None:
        self._reach = reach
        self._ids: dict[str, GpuIds] = {}
        self._announced: str | None = None  # PCI id of the last UUID line
        self._since = 0

    def feed(self, message: str) -> bool:
        """Learn from one kernel message; True when it was an identity line."""
        self._since += 1
        if "NVRM: GPU " not in message:
            return False
        found = parse_identity(message)
        if found is None:
            return False
        bdf = found.bdf
        if bdf is None:  # the board-serial line: belongs to the UUID line before it
            bdf = self._announced if self._since <= self._reach else None
            self._announced = None
        elif found.uuid is not None:
            self._announced, self._since = bdf, 0
        if bdf is not None:
            old = self._ids.get(bdf, GpuIds())
            self._ids[bdf] = GpuIds(found.uuid or old.uuid, found.serial or old.serial)
        return True

    def get(self, bdf: str) -> GpuIds | None:
        return self._ids.get(bdf)

    def snapshot(self) -> dict[str, GpuIds]:
        return dict(self._ids)
