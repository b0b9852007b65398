"""Write a real-format XID line into a kernel log: a game-day tool.

:func:`xid_line` prints exactly what the driver prints (``kernel_rc.c``'s
``NVRM: Xid (PCI:%04x:%02x:%02x): %d, pid=%s, name=%s, <msg>``), so an injected
fault travels the same path as a real one. :func:`write_line` appends it to the
configured ``file`` source, or writes it to ``/dev/kmsg`` (``kmsg`` and ``journal``
sources; needs root), as AWS's HyperPod resiliency demo does.
"""

from __future__ import annotations

import os
import time

from hpresil.config import KernelLogConfig, expand
from hpresil.errors import HpresilError, UsageError
from hpresil.vocab.gpu import normalize_bus_id

KMSG_PATH = "/dev/kmsg"
KMSG_PRIORITY = "<3>"  # KERN_ERR

# Messages as the driver prints them for common XIDs (NVIDIA Xid catalog wording;
# the 13/63/79/95/119 texts are copied from real logs in tests/fixtures/xid).
DEFAULT_MESSAGES: dict[int, str] = {
    13: "Graphics SM Warp Exception on (GPC 0, TPC 0, SM 0): Out Of Range Address",
    31: "Ch 00000008, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ "
    "0x7f2f_a0000000. Fault is of type FAULT_PDE ACCESS_TYPE_VIRT_READ",
    43: "Ch 00000008",
    45: "Ch 00000001",
    48: "An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer "
    "at partition 0, subpartition 0.",
    63: "Row Remapper: New row marked for remapping, reset gpu to activate.",
    64: "Row Remapper: Failed to mark row for remapping, reset gpu to activate.",
    74: "NVLink: fatal error detected on link 0(0x0, 0x0, 0x10000, 0x0, 0x0, 0x0, 0x0)",
    79: "GPU has fallen off the bus.",
    92: "High single-bit ECC error rate detected.",
    94: "Contained: SM (0x1). RST: No, D-RST: No",
    95: "Uncontained: LTC TAG (0x2, 0x1). RST: Yes, D-RST: No",
    119: "Timeout after 6s of waiting for RPC response from GPU0 GSP! Expected function 76 "
    "(GSP_RM_CONTROL) (0x20801813 0x4c).",
}


def xid_line(
    xid: int,
    pci_bus_id: str,
    pid: int | None = None,
    process: str | None = None,
    message: str | None = None,
) -> str:
    """``NVRM: Xid (PCI:0000:18:00): 79, pid='<unknown>', name=<unknown>, GPU has ...``"""
    if xid < 0:
        raise UsageError(f"XID must be a positive number, not {xid}")
    bdf = normalize_bus_id(pci_bus_id)
    if bdf is None:
        raise UsageError(f"not a PCI bus id: {pci_bus_id!r} (expected e.g. 0000:18:00)")
    text = DEFAULT_MESSAGES.get(xid, "injected by hpresil") if message is None else message
    who = "'<unknown>'" if pid is None else str(pid)
    name = process or "<unknown>"
    return f"NVRM: Xid (PCI:{bdf}): {xid}, pid={who}, name={name}, {text}"


def write_line(cfg: KernelLogConfig, node: str, text: str) -> None:
    """Put ``text`` where the agent's kernel-log source will read it."""
    if "\n" in text:
        raise UsageError("a kernel log line cannot contain a newline")
    if cfg.source == "file":
        path = expand(cfg.path, node)
        line = f"[{time.monotonic():12.6f}] {text}\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one write: appends are not interleaved
            finally:
                os.close(fd)
        except OSError as exc:
            raise HpresilError(f"cannot append to {path}: {exc.strerror or exc}") from None
        return
    try:
        fd = os.open(KMSG_PATH, os.O_WRONLY)
        try:
            os.write(fd, f"{KMSG_PRIORITY}{text}\n".encode())
        finally:
            os.close(fd)
    except PermissionError:
        raise HpresilError(f"cannot write {KMSG_PATH}: permission denied (run as root)") from None
    except OSError as exc:
        raise HpresilError(f"cannot write {KMSG_PATH}: {exc.strerror or exc}") from None
