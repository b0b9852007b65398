"""The prefixes kernel-log sources put before a kernel message, and their removal.

dmesg ``[123.456]``, syslog priority ``<4>``, dmesg -T ``[Sun Feb 23 16:24:18 2025]``,
dmesg --decode ``kern  :warn  : `` with an ISO time, journald/syslog
``May 18 19:02:39 host kernel:`` (also short-precise and short-iso), /dev/kmsg records
``6,1234,5678901,-;``. They can stack (``<3>[ 12.5] NVRM: ...``).
"""

from __future__ import annotations

import re

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
