"""The NVML backend on a real GPU (marker ``gpu``; skipped where NVML cannot start)."""

from __future__ import annotations

import pytest

from hpresil.adapters.gpu.base import normalize_bus_id
from hpresil.errors import GpuError

pytestmark = pytest.mark.gpu


@pytest.fixture
def backend():  # type: ignore[no-untyped-def]
    from hpresil.adapters.gpu.nvml import NvmlBackend

    try:
        b = NvmlBackend()
    except GpuError as exc:
        pytest.skip(f"no usable NVML here: {exc}")
    yield b
    b.close()


def test_every_gpu_has_an_identity(backend) -> None:  # type: ignore[no-untyped-def]
    gpus = backend.devices()
    assert gpus, "NVML started but found no GPU"
    for g in gpus:
        assert not g.lost, g
        assert g.identity.uuid and g.identity.uuid.startswith("GPU-")
        assert (
            g.identity.pci_bus_id
            and normalize_bus_id(g.identity.pci_bus_id) == g.identity.pci_bus_id
        )
        assert g.identity.name


def test_counters_are_numbers_or_unsupported(backend) -> None:  # type: ignore[no-untyped-def]
    for g in backend.devices():
        for value in (g.ecc_uncorrected_volatile, g.ecc_corrected_volatile, g.temperature_c):
            assert value is None or (isinstance(value, int) and value >= 0)
        assert g.temperature_c is not None  # every datacenter GPU reports it


def test_close_twice_is_harmless(backend) -> None:  # type: ignore[no-untyped-def]
    backend.close()
    backend.close()


def test_backend_opens_or_refuses_with_a_one_line_gpu_error() -> None:
    from hpresil.adapters.gpu.nvml import NvmlBackend

    try:
        NvmlBackend().close()
    except GpuError as exc:
        assert "NVML could not start" in str(exc) and "\n" not in str(exc)
