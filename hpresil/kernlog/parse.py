"""Kernel-log line -> :class:`~hpresil.vocab.XidEvent`.

Formats: /work/shared/reference/gpu-health.md section 1 (printer in NVIDIA's
open-gpu-kernel-modules ``kernel_rc.c``). Every prefix a log source adds is stripped
first (dmesg ``[123.456]``, ``<4>``, dmesg -T, dmesg --decode with ISO time,
journald/syslog ``May 18 19:02:39 host kernel:``, /dev/kmsg ``6,1234,5678901,-;``).

"Fallen off the bus" lines without an XID number become XID 79; the same fault is
usually also printed as ``Xid ...: 79``, so a caller de-duplicates with
:class:`Deduper`. NVSwitch SXid lines are not XIDs and answer None (not handled yet).
Nothing here raises: a line that is not understood answers None.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from hpresil.adapters.gpu.base import normalize_bus_id
from hpresil.vocab import XidEvent

log = logging.getLogger(__name__)

GPU_LOST_XID = 79
_LOST_MESSAGE = "GPU has fallen off the bus."
_HEX = "[0-9a-fA-F]"
_BDF = rf"{_HEX}{{4}}:{_HEX}{{2}}:{_HEX}{{2}}"

# The reference regex; additionally tolerates a PCI function suffix (".0").
XID_RE = re.compile(
    rf"NVRM: Xid \((?:PCI:)?(?P<bdf>{_BDF})(?:\.[0-7])?"
    r"(?: GPU-I:(?P<gi>\d+))?(?: GPU-CI:(?P<ci>\d+))?\): (?P<xid>\d+)"
    r"(?:, pid=(?P<pid>'<unknown>'|\d+)(?:, name=(?P<name>[^,]*))?)?(?:, ?(?P<msg>.*))?$"
)
SXID_RE = re.compile(
    r"nvidia-nvswitch(?P<sw>\d+): SXid \(PCI:(?P<bdf>[0-9a-fA-F:.]+)\): (?P<sxid>\d+), (?P<msg>.*)$"
)
# "NVRM: GPU 0000:91:00.0: GPU has fallen off the bus." / older
# "NVRM: GPU at 0000:01:00.0 has fallen off the bus." / "NVRM: GPU at PCI:0000:01:00: ..."
_LOST_RE = re.compile(
    rf"NVRM: GPU (?:at )?(?:PCI:)?(?P<bdf>{_BDF})(?:\.[0-7])?:? (?:GPU )?has fallen off the bus"
)
# Three-line form: "NVRM: The NVIDIA GPU 0000:b3:00.0" ... "NVRM: fallen off the bus and ..."
_LOST_HEAD_RE = re.compile(rf"NVRM: The NVIDIA GPU (?P<bdf>{_BDF})(?:\.[0-7])?\s*$")
_LOST_TAIL_RE = re.compile(r"NVRM: fallen off the bus and is not responding")

_MONTH_TIME = r"[A-Z][a-z]{2}\s+\d{1,2} \d{2}:\d{2}:\d{2}"
_ISO_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
_PREFIXES = (
    re.compile(r"^\d+,\d+,\d+,[^;]*;"),  # /dev/kmsg record: prio,seq,usec,flags;
    re.compile(r"^<\d{1,3}>"),  # syslog priority
    re.compile(r"^\[\s*\d+\.\d+\]\s*"),  # dmesg
    re.compile(rf"^\[[A-Z][a-z]{{2}} {_MONTH_TIME} \d{{4}}\]\s*"),  # dmesg -T
    re.compile(r"^[a-z]+\s*:[a-z]+\s*:\s*"),  # dmesg --decode "kern  :warn  : "
    re.compile(rf"^{_ISO_TIME}\s+(?:\S+ kernel(?:\[\d+\])?:\s*)?"),  # iso time (+ journald host)
    re.compile(rf"^{_MONTH_TIME}(?:\.\d+)? \S+ kernel(?:\[\d+\])?:\s*"),  # syslog, journalctl
    re.compile(r"^kernel:\s*"),
)


def strip_prefix(line: str) -> str:
    """The kernel message without the prefixes log sources add."""
    text = line.strip()
    for _ in range(len(_PREFIXES)):
        for prefix in _PREFIXES:
            m = prefix.match(text)
            if m and m.end() > 0:
                text = text[m.end() :]
                break
        else:
            return text
    return text


def parse_line(line: str, seen_at: datetime) -> XidEvent | None:
    """The XID in ``line``, or None when it holds none (never raises)."""
    try:
        return _parse(line, seen_at)
    except Exception as exc:  # a parser must not stop the agent
        log.debug("kernel log line not parsed (%s): %.200r", exc, line)
        return None


def _parse(line: str, seen_at: datetime) -> XidEvent | None:
    text = strip_prefix(line)
    if "NVRM" not in text:
        return None
    m = XID_RE.search(text)
    if m is not None:
        pid = m.group("pid")
        name = m.group("name")
        return XidEvent(
            xid=int(m.group("xid")),
            pci_bus_id=_bdf(m.group("bdf")),
            pid=int(pid) if pid and pid.isdigit() else None,
            process=name.strip() if name and name.strip() not in ("", "<unknown>") else None,
            message=(m.group("msg") or "").strip(),
            raw=line.rstrip("\r\n"),
            seen_at=seen_at,
        )
    m = _LOST_RE.search(text)
    if m is not None:
        return lost_event(m.group("bdf"), line, seen_at)
    log.debug("NVRM line without an XID: %.200r", text)
    return None


def lost_event(bdf: str, raw: str, seen_at: datetime) -> XidEvent:
    """XID 79 for a "fallen off the bus" line that carries no XID number."""
    return XidEvent(
        xid=GPU_LOST_XID,
        pci_bus_id=_bdf(bdf),
        message=_LOST_MESSAGE,
        raw=raw.rstrip("\r\n"),
        seen_at=seen_at,
    )


def _bdf(text: str) -> str:
    bdf = normalize_bus_id(text)
    if bdf is None:  # the regexes only pass well-formed addresses
        raise ValueError(f"bad PCI address {text!r}")
    return bdf


class Deduper:
    """Drops a "fallen off the bus" line that repeats a recent XID 79 on the same GPU.

    The driver prints one GPU loss as an ``Xid ...: 79`` line plus one or more "fallen
    off the bus" lines without an XID number; those companions are the same fault.
    Explicit ``Xid`` lines are always admitted: a GPU that is lost again after a
    repair, even within the window, is a new fault.
    """

    def __init__(self, window_s: float = 300.0) -> None:
        self._window = timedelta(seconds=window_s)
        self._last_lost: dict[str, datetime] = {}

    def admit(self, event: XidEvent) -> bool:
        if event.xid != GPU_LOST_XID:
            return True
        last = self._last_lost.get(event.pci_bus_id)
        recent = last is not None and abs(event.seen_at - last) <= self._window
        if recent and not is_explicit(event):
            return False
        self._last_lost[event.pci_bus_id] = event.seen_at
        return True


def is_explicit(event: XidEvent) -> bool:
    """Whether the event came from an ``NVRM: Xid (...)`` line (not a companion line)."""
    return XID_RE.search(event.raw) is not None


class LineParser:
    """Stateful parsing of a stream: single lines through :func:`parse_line`, plus the
    three-line "The NVIDIA GPU <bdf> ... fallen off the bus" form, de-duplicated."""

    _HEAD_REACH = 4  # lines within which the tail of the three-line form must follow

    def __init__(self, window_s: float = 300.0) -> None:
        self._dedupe = Deduper(window_s)
        self._head: tuple[str, str] | None = None  # (bdf, raw line)
        self._since_head = 0

    def feed(self, line: str, seen_at: datetime) -> XidEvent | None:
        event = parse_line(line, seen_at) or self._multiline(line, seen_at)
        if event is None or not self._dedupe.admit(event):
            return None
        return event

    def _multiline(self, line: str, seen_at: datetime) -> XidEvent | None:
        try:
            text = strip_prefix(line)
            head = _LOST_HEAD_RE.search(text)
            if head is not None:
                self._head, self._since_head = (head.group("bdf"), line), 0
                return None
            if self._head is None:
                return None
            self._since_head += 1
            if _LOST_TAIL_RE.search(text):
                bdf, raw = self._head
                self._head = None
                return lost_event(bdf, raw, seen_at)
            if self._since_head >= self._HEAD_REACH:
                self._head = None
        except Exception as exc:
            log.debug("kernel log line not parsed (%s): %.200r", exc, line)
        return None
