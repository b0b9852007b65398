"""The ``nvidia_smi`` GPU backend: ``nvidia-smi -q -x`` parsed into GpuSamples.

For nodes without a usable pynvml, and as a second opinion. The command runs through
:func:`hpresil.adapters.proc.run` under a timeout. nvidia-smi exits non-zero when a
GPU cannot be reached ("Unable to determine the device handle for GPU
0000:3b:00.0: GPU is lost ...") and may still print the XML of the others: such a
GPU is reported lost (or with its error), and GPU indices follow PCI order as NVML's
do. NVLink state and error counters are not in ``-q -x``: ``nvlink`` stays None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from hpresil.adapters import proc
from hpresil.adapters.gpu.smi_xml import parse_smi_xml
from hpresil.errors import CommandError, GpuError
from hpresil.vocab import GpuIdentity
from hpresil.vocab.gpu import GpuSample, normalize_bus_id

NVIDIA_SMI_TIMEOUT_S = 10.0
_NO_HANDLE = re.compile(
    r"device handle for GPU\s*(?P<bdf>[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}(?:\.\d)?)"
    r"\s*:\s*(?P<msg>.+)$",
    re.IGNORECASE | re.MULTILINE,
)


class NvidiaSmiBackend:
    def __init__(self, binary: str = "nvidia-smi", timeout_s: float = NVIDIA_SMI_TIMEOUT_S) -> None:
        self._argv = (binary, "-q", "-x")
        self._timeout = timeout_s

    def devices(self) -> list[GpuSample]:
        try:
            done = proc.run(self._argv, timeout=self._timeout, check=False, error=CommandError)
        except CommandError as exc:
            raise GpuError(str(exc)) from None
        return samples_from_output(done.stdout, done.stderr, done.returncode, self._argv)

    def close(self) -> None:
        pass


def samples_from_output(
    stdout: str, stderr: str, returncode: int, argv: Sequence[str] = ("nvidia-smi",)
) -> list[GpuSample]:
    """The GPUs in one run's output (pure, for tests)."""
    unreachable = {
        bdf: m.group("msg").strip()
        for m in _NO_HANDLE.finditer(stdout + "\n" + stderr)
        if (bdf := normalize_bus_id(m.group("bdf"))) is not None
    }
    has_xml = "<nvidia_smi_log" in stdout
    if returncode == 0 or has_xml:
        found = parse_smi_xml(stdout) if has_xml else []
    elif "no devices were found" in (stdout + stderr).lower():
        return []
    elif not unreachable:
        detail = (stderr or stdout).strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        raise GpuError(f"`{' '.join(argv)}` exited {returncode}{tail}")
    else:
        found = []
    return _merge(found, unreachable)


def _merge(found: list[GpuSample], unreachable: dict[str, str]) -> list[GpuSample]:
    """Add the GPUs nvidia-smi could not reach; index all by PCI address."""
    seen = {g.identity.pci_bus_id for g in found}
    extra = [
        GpuSample(
            identity=GpuIdentity(index=0, pci_bus_id=bdf),
            lost="lost" in msg.lower() or "fallen off" in msg.lower(),
            error=msg[:500],
        )
        for bdf, msg in unreachable.items()
        if bdf not in seen
    ]
    ordered = sorted([*found, *extra], key=lambda g: g.identity.pci_bus_id or "")
    return [
        replace(g, identity=g.identity.model_copy(update={"index": i}))
        for i, g in enumerate(ordered)
    ]
