"""The NVML backend on a real GPU (marker ``gpu``; skipped where NVML cannot start)."""

from __future__ import annotations

import pytest

from hpresil.errors import GpuError
from hpresil.vocab.gpu import EccCounts, GpuSample, normalize_bus_id

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
        vol = _volatile(g)
        for value in (vol.uncorrected, vol.corrected, g.temperature_c):
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


def test_health_records_are_typed_and_plausible(backend) -> None:  # type: ignore[no-untyped-def]
    for g in backend.devices():
        assert g.error is None, g.error
        assert g.pcie is not None and g.pcie.width and g.pcie.max_width
        assert g.pcie.width <= g.pcie.max_width
        assert g.thermal is not None and g.thermal.shutdown_c and g.thermal.slowdown_c
        assert g.thermal.slowdown_c <= g.thermal.shutdown_c
        assert g.power is not None and g.power.limit_w and g.power.limit_w > 0
        assert g.clock_events is not None and g.clock_events.reasons >= 0
        assert g.row_remap is None or g.row_remap.correctable >= 0
        for link in g.nvlink or ():
            assert link.replay is None or link.replay >= 0
        assert g.recovery_action is None or 0 <= g.recovery_action <= 7


def test_nvidia_smi_sees_the_same_gpus(backend) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from hpresil.adapters.gpu.smi import NvidiaSmiBackend

    if shutil.which("nvidia-smi") is None:
        pytest.skip("no nvidia-smi here")
    nvml = {g.identity.uuid: g for g in backend.devices()}
    smi = {g.identity.uuid: g for g in NvidiaSmiBackend().devices()}
    assert nvml.keys() == smi.keys()
    for uuid, g in nvml.items():
        s = smi[uuid]
        assert (g.identity.pci_bus_id, g.identity.index) == (
            s.identity.pci_bus_id,
            s.identity.index,
        )
        assert _volatile(g).uncorrected == _volatile(s).uncorrected
        assert g.row_remap == s.row_remap and g.recovery_action == s.recovery_action
        assert (g.fabric is None) == (s.fabric is None)
        if g.thermal and s.thermal:
            assert g.thermal.gpu_max_c == s.thermal.gpu_max_c


def _volatile(g: GpuSample) -> EccCounts:
    """The volatile ECC counts, all None where the GPU does not offer them."""
    return (g.ecc.volatile if g.ecc is not None else None) or EccCounts()
