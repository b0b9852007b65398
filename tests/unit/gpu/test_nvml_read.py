"""The NVML backend through the real pynvml bindings and ctypes, into the NVML double
(a C ``libnvidia-ml.so.1`` with nvml.h's signatures: scripts/nvml-double), as on a
real node. The real thing: test_nvml.py (``-m gpu``)."""

from __future__ import annotations

import json
import uuid

import pynvml
import pytest

from hpresil.adapters.gpu.nvml import NvmlBackend
from hpresil.adapters.gpu.nvml_read import _field_value
from hpresil.checks.ecc import EccCheck
from hpresil.checks.retired_pages import RetiredPagesCheck
from hpresil.vocab import Action, Status
from hpresil.vocab.gpu import FabricState, GpuSample, NvLink
from tests.nvmldouble import NvmlDouble, run_in_subprocess
from tests.unit.gpu.samples import snap

CLUSTER = "2f1d6e4c-9b8a-4c3d-8e7f-0a1b2c3d4e5f"


def devices() -> list[GpuSample]:
    backend = NvmlBackend()
    try:
        return backend.devices()
    finally:
        backend.close()


def test_every_record_is_read(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(
        0,
        ecc_volatile_corrected_dram=3,
        ecc_aggregate_corrected_dram=3,
        row_remap_correctable=2,
        row_remap_pending=True,
        memory_temperature_c=41,
        clock_event_reasons=0x41,
        clock_counter_hw_thermal_ns=2_000_000,
        power_mw=512_345,
        pcie_replays=4,
        utilization_pct=97,
        nvlink_down=[5],
        nvlink_replay={5: 50},
        nvlink_recovery={5: 51},
        nvlink_crc_flit={5: 52},
        nvlink_crc_data={5: 53},
        fabric_cluster_uuid=CLUSTER,
        fabric_clique_id=7,
    )
    gpu = devices()[0]
    assert gpu.error is None and not gpu.lost
    assert gpu.identity.pci_bus_id == "0000:18:00"
    assert gpu.identity.uuid is not None and gpu.identity.uuid.startswith("GPU-")
    assert gpu.identity.name == "NVIDIA H100 80GB HBM3"
    assert gpu.ecc is not None and gpu.ecc.volatile is not None
    assert (gpu.ecc.volatile.corrected, gpu.ecc.volatile.uncorrected) == (3, 0)
    assert gpu.ecc.enabled and gpu.ecc.aggregate is not None
    assert gpu.ecc.aggregate.dram_corrected == 3 and gpu.ecc.aggregate.sram_corrected == 0
    assert gpu.ecc.sram_threshold_exceeded is False
    assert gpu.row_remap is not None and gpu.row_remap.pending and not gpu.row_remap.failure
    assert gpu.retired_pages is None  # Hopper answers NotSupported: unsupported, no error
    assert gpu.thermal is not None and gpu.thermal.memory_c == 41
    assert gpu.clock_events is not None and gpu.clock_events.reasons == 0x41
    assert gpu.clock_events.counters is not None
    assert gpu.clock_events.counters.hw_thermal_us == 2000  # ns -> us
    assert gpu.power is not None and gpu.power.draw_w == 512.345 and gpu.power.limit_w == 700.0
    assert gpu.pcie is not None and gpu.pcie.replays == 4 and gpu.utilization_pct == 97
    assert gpu.nvlink is not None and len(gpu.nvlink) == 18
    assert gpu.nvlink[5] == NvLink(
        link=5, active=False, replay=50, recovery=51, crc_flit=52, crc_data=53
    )
    assert gpu.fabric is not None and gpu.fabric.state is FabricState.COMPLETED
    assert gpu.fabric.healthy and gpu.fabric.clique_id == 7
    assert gpu.recovery_action == 0


def test_the_fabric_struct_crosses_into_c_by_reference(nvml_double: NvmlDouble) -> None:
    """pynvml hands the fabric struct straight to C, and nvml.h takes a pointer: a
    struct passed by value gives a real driver a garbage pointer (the agent crashed on
    an H100). The double checks the pointer, as a driver dereferences it; in a child
    process, so that the bug shows as a failed test, not a dead test run."""
    code = (
        "from hpresil.adapters.gpu.nvml import NvmlBackend\n"
        "b = NvmlBackend()\n"
        "g = b.devices()[0]\n"
        "print(g.fabric.state.value, g.error)\n"
    )
    done = run_in_subprocess(code, nvml_double.path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["completed", "None"]


def test_the_cluster_uuid_is_a_canonical_uuid(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(2, fabric_cluster_uuid=CLUSTER.upper())
    fabric = devices()[2].fabric
    assert fabric is not None and fabric.cluster_uuid == CLUSTER
    assert str(uuid.UUID(fabric.cluster_uuid)) == fabric.cluster_uuid


@pytest.mark.parametrize("versions", [[2], [3], [2, 3]])
def test_a_driver_that_refuses_a_fabric_struct_version_is_asked_another_way(
    nvml_double: NvmlDouble, versions: list[int]
) -> None:
    """ARGUMENT_VERSION_MISMATCH on one struct version, then an answer to another, is
    a healthy GPU: no error is kept, so unsupported checks stay UNSUPPORTED."""
    nvml_double.set_node(fabric_info_versions=versions)
    gpus = devices()
    assert all(g.error is None for g in gpus), gpus[0].error
    assert all(g.fabric is not None and g.fabric.healthy for g in gpus)
    (pages,) = {r.status for r in RetiredPagesCheck().evaluate(snap(gpus))}
    assert pages is Status.UNSUPPORTED


def test_no_fabric_struct_version_accepted_falls_back_to_the_unversioned_call(
    nvml_double: NvmlDouble,
) -> None:
    nvml_double.set_node(fabric_info_versions=[4])  # a newer driver than the binding
    gpu = devices()[0]
    assert gpu.error is None
    assert gpu.fabric is not None and gpu.fabric.state is FabricState.COMPLETED


def test_sram_threshold_exceeded_is_read_and_drains(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(4, sram_threshold_exceeded=True)
    gpus = devices()
    ecc = gpus[4].ecc
    assert ecc is not None and ecc.sram_threshold_exceeded is True
    assert gpus[3].ecc is not None and gpus[3].ecc.sram_threshold_exceeded is False
    result = EccCheck().evaluate(snap(gpus))[4]
    assert result.status is Status.FAIL and result.action is Action.DRAIN, result.summary


def test_sram_status_denied_to_a_user_is_unavailable_not_an_error(
    nvml_double: NvmlDouble,
) -> None:
    """nvml.h: the SRAM status "requires root/admin permissions"; ``hpresil check`` run
    by a user gets NO_PERMISSION, which must not turn unsupported checks UNKNOWN."""
    nvml_double.set_gpu(0, fail={"nvmlDeviceGetSramEccErrorStatus": 4})
    gpu = devices()[0]
    assert gpu.error is None
    assert gpu.ecc is not None and gpu.ecc.sram_threshold_exceeded is None and gpu.ecc.enabled


def test_a_field_of_type_unsigned_short_is_read_from_its_member() -> None:
    fv = pynvml.c_nvmlFieldValue_t()
    fv.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT
    fv.value.ullVal = 0xDEAD_BEEF_0000_0000 | 41  # bytes beyond the short: not the value
    assert _field_value(fv) == 41


def test_a_field_answered_as_unsigned_short_by_the_driver(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(1, memory_temperature_c=52, field_types={82: 6})
    thermal = devices()[1].thermal
    assert thermal is not None and thermal.memory_c == 52


def test_not_supported_is_none_and_never_an_error(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(
        6, nvlink_links=0, recovery_action=None, row_remap_correctable=None, power_mw=None
    )
    gpu = devices()[6]
    assert gpu.error is None
    assert gpu.nvlink is None and gpu.recovery_action is None and gpu.row_remap is None
    assert gpu.power is not None and gpu.power.draw_w is None and gpu.power.limit_w == 700.0


def test_other_errors_are_kept_and_the_rest_still_read(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(3, fail={"nvmlDeviceGetPcieReplayCounter": 999})
    gpu = devices()[3]
    assert gpu.error is not None and "Unknown Error" in gpu.error
    assert gpu.pcie is not None and gpu.pcie.replays is None and gpu.pcie.width == 16


def test_a_lost_gpu_keeps_its_identity_and_reads_nothing_else(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(6, lost=True)
    gpus = devices()
    lost = gpus[6]
    assert lost.lost and lost.row_remap is None and lost.pcie is None
    assert lost.identity.pci_bus_id == "0000:ba:00"
    assert not any(g.lost for i, g in enumerate(gpus) if i != 6)


def test_a_gpu_that_no_longer_enumerates_is_missing(nvml_double: NvmlDouble) -> None:
    nvml_double.set_gpu(2, present=False)
    gpus = devices()
    assert len(gpus) == 7 and gpus[2].identity.pci_bus_id == "0000:5d:00"


def test_an_older_driver_without_the_newer_calls(nvml_double: NvmlDouble) -> None:
    """Driver branch 535: no nvmlDeviceGetGpuFabricInfoV or ...SramEccErrorStatus
    symbol (pynvml answers FunctionNotFound), no recovery-action field: unsupported,
    no error, and the fabric read the older way."""
    code = (
        "import json\n"
        "from hpresil.adapters.gpu.nvml import NvmlBackend\n"
        "g = NvmlBackend().devices()[0]\n"
        "print(json.dumps([g.error, g.fabric.state.value, g.ecc.sram_threshold_exceeded,\n"
        "                  g.recovery_action, g.ecc.enabled]))\n"
    )
    done = run_in_subprocess(code, nvml_double.path, driver="r535")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [None, "completed", None, None, True]


def test_a_serial_of_zeros_is_no_serial(nvml_double: NvmlDouble) -> None:
    """Cloud VMs answer a placeholder serial shared by every GPU of the kind: kept, it
    would merge their incident histories (the nvidia_smi backend does the same)."""
    nvml_double.set_gpu(0, serial="0000000000000")
    gpus = devices()
    assert gpus[0].identity.serial is None and gpus[1].identity.serial
