"""What every GPU backend is: ``devices()`` answers one frozen
:class:`~hpresil.vocab.gpu.GpuSample` per GPU.

A backend is a narrow adapter (STYLE.md pattern 5): ``devices()`` queries the
hardware (or the NVML double standing in for it) and returns plain data; judging it
is the checks' job.
"""

from __future__ import annotations

from typing import Protocol

from hpresil.vocab.gpu import GpuSample


class GpuBackend(Protocol):
    """The GPU adapter. ``devices`` raises :class:`~hpresil.errors.GpuError` when it
    cannot answer at all (driver missing, state unreadable)."""

    def devices(self) -> list[GpuSample]: ...

    def close(self) -> None: ...
