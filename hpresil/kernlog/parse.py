"""Kernel-log line -> :class:`~hpresil.vocab.XidEvent`.

Formats: /work/shared/reference/gpu-health.md section 1 (printers in NVIDIA's
open-gpu-kernel-modules: ``kernel_rc.c`` for XIDs, ``nvswitch`` ``NVSWITCH_PRINT_SXID``
for SXids). Every prefix a log source adds is stripped first (dmesg ``[123.456]``,
``<4>``, dmesg -T, dmesg --decode with ISO time, journald/syslog
``May 18 19:02:39 host kernel:``, /dev/kmsg ``6,1234,5678901,-;``).

What a line gives:

* ``NVRM: Xid (PCI:bdf[ GPU-I:nn[ GPU-CI:nn]]): N, pid=.., name=.., msg``: XID N, with
  the MIG instances, and what the message adds for XID 45 (``root_xid`` from "caused
  by previous Xid M"), XID 154 (``recovery_action``, the new value of "GPU recovery
  action changed from 0x0 (None) to 0x4 (Drain and Reset)") and the NVLink5 XIDs
  144-150 (``fatal``). Old drivers print the address without ``PCI:``.
  A line the kernel log cut short still gives its XID and GPU when it got as far as
  the number (``NVRM: Xid (PCI:0000:01:00): 154 (``); what is missing stays empty.
* "Fallen off the bus" lines without an XID number: XID 79. The same fault is
  usually also printed as ``Xid ...: 79``, before or after them, so a caller
  de-duplicates with :class:`Deduper` (one fault, one event).
* ``nvidia-nvswitchK: SXid (PCI:bdf): N, Fatal, ...``: an event of kind ``"sxid"``
  for NVSwitch K, ``fatal`` from "Fatal" / "Non-fatal". The driver follows each one
  with ``Severity ...`` and ``Data {...}`` lines of the same SXid: those are details
  of that error, not errors, and give nothing.

:class:`LineParser` (a stream) adds the three-line "The NVIDIA GPU ... fallen off the
bus" form, the de-duplication, and the GPU identity lines (:mod:`.identity`), so an
event names the GPU's UUID and serial when the driver printed them.
Nothing here raises: a line that is not understood answers None.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hpresil.kernlog.identity import GpuIds, IdentityMap
from hpresil.kernlog.prefix import strip_prefix
from hpresil.vocab import XidEvent
from hpresil.vocab.gpu import normalize_bus_id

log = logging.getLogger(__name__)

GPU_LOST_XID = 79
ROOT_CAUSED_XID = 45  # "preemptive cleanup": the driver names the XID that caused it
RECOVERY_XID = 154
NVLINK5_XIDS = frozenset(range(144, 151))  # message: "<unit> Fatal|Nonfatal XC0 ..."
_LOST_MESSAGE = "GPU has fallen off the bus."
_HEX = "[0-9a-fA-F]"
_BDF = rf"{_HEX}{{4}}:{_HEX}{{2}}:{_HEX}{{2}}"

# The reference regex, plus a PCI function suffix (".0"), and not anchored at the end:
# a line cut anywhere after the XID number ("154 (", "79,", "13, pid=") still names
# the XID and the GPU. That is how NVIDIA/NVSentinel reads it (syslog-health-monitor
# pkg/xid/parser/csv.go @ 82c87775db2f: the pattern ends with optional fields and no
# "$"; csv_test.go @ 3e97fd00bd81 expects "...: 154 (" to parse as XID 154 on
# 0000:01:00); leptonai/gpud's `NVRM: Xid.*?: (\d+),` (components/accelerator/nvidia/
# xid/matcher.go @ 66ccdbe90254) accepts "79," but not "154 (" nor a bare number. A
# pid or name cut short reads as absent; the "\b" refuses "79abc", which no driver prints.
XID_RE = re.compile(
    rf"NVRM: Xid \((?:PCI:)?(?P<bdf>{_BDF})(?:\.[0-7])?"
    r"(?: GPU-I:(?P<gi>\d+))?(?: GPU-CI:(?P<ci>\d+))?\): (?P<xid>\d+)\b"
    r"(?:, pid=(?P<pid>[^,]*)(?:, name=(?P<name>[^,]*))?)?(?:, ?(?P<msg>.*))?"
)
_UNKNOWN = "<unknown>"  # what the driver prints for the name of an unowned error
SXID_RE = re.compile(
    r"nvidia-nvswitch(?P<sw>\d+): SXid \(PCI:(?P<bdf>[0-9a-fA-F:.]+)\): (?P<sxid>\d+), (?P<msg>.*)$"
)
# Lines the driver prints after an SXid, about that SXid.
_SXID_DETAIL_RE = re.compile(r"^(?:Severity \d+ Engine instance|Data \{)")
_FATAL_RE = re.compile(r"^(?:[A-Za-z0-9_]+\s+)?(?:(?P<non>Non-?fatal)|Fatal)\b", re.IGNORECASE)
_ROOT_RE = re.compile(r"caused by previous Xid (?P<root>\d+)\s*$")
# "GPU recovery action changed from 0x0 (None) to 0x4 (Drain and Reset)"; the "\b"
# keeps a value cut short ("to 0x") from reading as 0 ("None").
_RECOVERY_RE = re.compile(
    r"recovery action changed from \S+(?: \([^)]*\))? "
    r"to (?:0x(?P<hex>[0-9a-fA-F]+)|(?P<dec>[0-9]+))\b"
)
# "NVRM: GPU 0000:91:00.0: GPU has fallen off the bus." / older
# "NVRM: GPU at 0000:01:00.0 has fallen off the bus." / "NVRM: GPU at PCI:0000:01:00: ..."
_LOST_RE = re.compile(
    rf"NVRM: GPU (?:at )?(?:PCI:)?(?P<bdf>{_BDF})(?:\.[0-7])?:? (?:GPU )?has fallen off the bus"
)
# Three-line form: "NVRM: The NVIDIA GPU 0000:b3:00.0" ... "NVRM: fallen off the bus and ..."
_LOST_HEAD_RE = re.compile(rf"NVRM: The NVIDIA GPU (?P<bdf>{_BDF})(?:\.[0-7])?\s*$")
_LOST_TAIL_RE = re.compile(r"NVRM: fallen off the bus and is not responding")

__all__ = [
    "XID_RE",
    "Deduper",
    "LineParser",
    "is_explicit",
    "lost_event",
    "parse_line",
    "recovery_action_in",
    "strip_prefix",
]


def parse_line(line: str, seen_at: datetime) -> XidEvent | None:
    """The XID, SXid or GPU loss in ``line``, or None when it holds none (never raises)."""
    try:
        return _parse(strip_prefix(line), line, seen_at)
    except Exception as exc:  # a parser must not stop the agent
        log.debug("kernel log line not parsed (%s): %.200r", exc, line)
        return None


def _parse(text: str, line: str, seen_at: datetime) -> XidEvent | None:
    if "NVRM" in text:
        return _nvrm(text, line, seen_at)
    if "SXid" in text:
        return _sxid(text, line, seen_at)
    return None


def _nvrm(text: str, line: str, seen_at: datetime) -> XidEvent | None:
    m = XID_RE.search(text)
    if m is not None:
        return _xid_event(m, line, seen_at)
    m = _LOST_RE.search(text)
    if m is not None:
        return lost_event(m.group("bdf"), line, seen_at)
    return None


def _xid_event(m: re.Match[str], line: str, seen_at: datetime) -> XidEvent:
    xid, pid, name = int(m.group("xid")), m.group("pid"), m.group("name")
    message = (m.group("msg") or "").strip()
    return XidEvent(
        xid=xid,
        pci_bus_id=_bdf(m.group("bdf")),
        pid=_pid(pid),
        process=_process(name),
        message=message,
        raw=line.rstrip("\r\n"),
        seen_at=seen_at,
        gpu_instance=_int(m.group("gi")),
        compute_instance=_int(m.group("ci")),
        fatal=_fatal(message) if xid in NVLINK5_XIDS else None,
        recovery_action=recovery_action_in(message) if xid == RECOVERY_XID else None,
        root_xid=_root_xid(message) if xid == ROOT_CAUSED_XID else None,
    )


def _sxid(text: str, line: str, seen_at: datetime) -> XidEvent | None:
    m = SXID_RE.search(text)
    if m is None:
        return None
    message = m.group("msg").strip()
    if _SXID_DETAIL_RE.match(message):
        return None
    return XidEvent(
        kind="sxid",
        xid=int(m.group("sxid")),
        pci_bus_id=_bdf(m.group("bdf")),
        switch=int(m.group("sw")),
        fatal=_fatal(message),
        message=message,
        raw=line.rstrip("\r\n"),
        seen_at=seen_at,
    )


def _pid(text: str | None) -> int | None:
    """The pid field's number; None for ``'<unknown>'`` or a value cut short."""
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _process(text: str | None) -> str | None:
    """The name field; None for ``<unknown>``, or what is left of it when the line was cut."""
    text = (text or "").strip()
    return None if _UNKNOWN.startswith(text) else text


def recovery_action_in(message: str) -> int | None:
    """The new value in XID 154's "recovery action changed from X to Y" message
    (None when the message does not say, or was cut before the value ended)."""
    m = _RECOVERY_RE.search(message)
    if m is None:
        return None
    return int(m.group("hex"), 16) if m.group("hex") else int(m.group("dec"))


def _root_xid(message: str) -> int | None:
    m = _ROOT_RE.search(message)
    return int(m.group("root")) if m else None


def _fatal(message: str) -> bool | None:
    m = _FATAL_RE.match(message)
    return None if m is None else m.group("non") is None


def _int(text: str | None) -> int | None:
    return int(text) if text else None


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


@dataclass(frozen=True)
class _Loss:
    """The GPU loss last admitted for one GPU."""

    at: datetime  # when its first line was seen
    has_xid_line: bool  # whether its ``Xid ...: 79`` line has been seen


class Deduper:
    """Keeps one XID 79 event per GPU loss, whichever of its lines comes first.

    The driver prints one GPU loss as an ``Xid ...: 79`` line plus one or more "fallen
    off the bus" lines without an XID number (companions), before or after it. The
    first line of a loss is admitted at once (no waiting for the others); within the
    window, on the same GPU, a companion is dropped, and so is the one ``Xid ...: 79``
    line that follows a loss first seen through its companions. A second ``Xid`` line
    is admitted: a GPU that is lost again after a repair, even within the window, is a
    new fault.
    """

    def __init__(self, window_s: float = 300.0) -> None:
        self._window = timedelta(seconds=window_s)
        self._last_lost: dict[str, _Loss] = {}

    def admit(self, event: XidEvent) -> bool:
        if event.kind != "xid" or event.xid != GPU_LOST_XID:
            return True
        explicit = is_explicit(event)
        last = self._last_lost.get(event.pci_bus_id)
        if last is not None and abs(event.seen_at - last.at) <= self._window:
            if not explicit:  # a companion of the recent loss
                return False
            if not last.has_xid_line:  # the Xid line of a loss its companions reported
                self._last_lost[event.pci_bus_id] = _Loss(last.at, has_xid_line=True)
                return False
        self._last_lost[event.pci_bus_id] = _Loss(event.seen_at, has_xid_line=explicit)
        return True


def is_explicit(event: XidEvent) -> bool:
    """Whether the event came from an ``NVRM: Xid (...)`` line (not a companion line)."""
    return XID_RE.search(event.raw) is not None


class LineParser:
    """Stateful parsing of a stream: single lines as :func:`parse_line` does, plus the
    three-line "The NVIDIA GPU <bdf> ... fallen off the bus" form, de-duplicated, and
    the driver's identity lines, kept in :attr:`identities` and put on later XIDs."""

    _HEAD_REACH = 4  # lines within which the tail of the three-line form must follow

    def __init__(self, window_s: float = 300.0) -> None:
        self._dedupe = Deduper(window_s)
        self._ids = IdentityMap(reach=self._HEAD_REACH)
        self._head: tuple[str, str] | None = None  # (bdf, raw line)
        self._since_head = 0

    @property
    def identities(self) -> Mapping[str, GpuIds]:
        """PCI id (``dddd:bb:dd``) -> the UUID and serial the driver printed for it."""
        return self._ids.snapshot()

    def feed(self, line: str, seen_at: datetime) -> XidEvent | None:
        try:
            text = strip_prefix(line)
            self._ids.feed(text)
            event = _parse(text, line, seen_at) or self._multiline(text, line, seen_at)
            if event is None or not self._dedupe.admit(event):
                return None
            return self._attributed(event)
        except Exception as exc:  # a parser must not stop the agent
            log.debug("kernel log line not parsed (%s): %.200r", exc, line)
            return None

    def _attributed(self, event: XidEvent) -> XidEvent:
        ids = self._ids.get(event.pci_bus_id) if event.kind == "xid" else None
        if ids is None:
            return event
        return event.model_copy(update={"gpu_uuid": ids.uuid, "gpu_serial": ids.serial})

    def _multiline(self, text: str, line: str, seen_at: datetime) -> XidEvent | None:
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
        return None
