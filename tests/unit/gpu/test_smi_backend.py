"""The nvidia_smi backend: running the command, and GPUs it could not reach."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from hpresil.adapters.gpu import open_backend
from hpresil.adapters.gpu.smi import NvidiaSmiBackend, samples_from_output
from hpresil.config import GpuConfig
from hpresil.errors import GpuError
from tests.unit.gpu.samples import A100, FIXTURES, L4, T4


def _fake_smi(tmp_path: Path, body: str) -> str:
    path = tmp_path / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_backend_runs_nvidia_smi_and_parses_its_xml(tmp_path: Path) -> None:
    binary = _fake_smi(tmp_path, f'[ "$*" = "-q -x" ] && cat {FIXTURES / T4}')
    (gpu,) = NvidiaSmiBackend(binary).devices()
    assert gpu.identity.name == "Tesla T4" and gpu.retired_pages is not None


def test_the_cluster_uuid_is_written_as_the_nvml_backend_writes_it(tmp_path: Path) -> None:
    """nvidia-smi may print the fabric cluster UUID in upper case; the sample holds
    ``str(uuid.UUID(bytes=raw))``, the NVML backend's form, so the two agree."""
    raw = bytes(range(0xA0, 0xB0))
    printed = str(uuid.UUID(bytes=raw)).upper()
    xml = (FIXTURES / L4).read_text().replace("<state>N/A</state>", "<state>Completed</state>")
    xml = xml.replace("<clusterUuid>N/A</clusterUuid>", f"<clusterUuid>{printed}</clusterUuid>")
    doc = tmp_path / "smi.xml"
    doc.write_text(xml)
    gpus = NvidiaSmiBackend(_fake_smi(tmp_path, f"cat {doc}")).devices()
    assert [g.fabric.cluster_uuid if g.fabric else None for g in gpus] == [
        str(uuid.UUID(bytes=raw))
    ] * 2
    assert str(uuid.UUID(bytes=raw)) == "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf"


def test_a_hung_nvidia_smi_is_a_gpu_error(tmp_path: Path) -> None:
    binary = _fake_smi(tmp_path, "sleep 5")
    with pytest.raises(GpuError, match="timed out"):
        NvidiaSmiBackend(binary, timeout_s=0.2).devices()


def test_a_missing_nvidia_smi_is_a_gpu_error(tmp_path: Path) -> None:
    with pytest.raises(GpuError, match="could not be started"):
        NvidiaSmiBackend(str(tmp_path / "absent")).devices()


def test_a_lost_gpu_is_reported_lost_and_indices_follow_pci_order() -> None:
    xml = (FIXTURES / A100).read_text()  # the A100 sits at 0000:01:00
    stderr = (
        "Unable to determine the device handle for GPU0000:00:1E.0: GPU is lost. "
        "Reboot the system to recover this GPU\n"
    )
    gpus = samples_from_output(xml, stderr, 15)
    assert [g.identity.pci_bus_id for g in gpus] == ["0000:00:1e", "0000:01:00"]
    assert [g.identity.index for g in gpus] == [0, 1]
    assert gpus[0].lost and "GPU is lost" in (gpus[0].error or "")
    assert not gpus[1].lost and gpus[1].identity.uuid


def test_an_unreachable_gpu_without_xml_is_still_listed() -> None:
    out = "Unable to determine the device handle for GPU 0000:3b:00.0: Unknown Error\n"
    (gpu,) = samples_from_output(out, "", 255)
    assert gpu.identity.pci_bus_id == "0000:3b:00" and not gpu.lost
    assert gpu.error == "Unknown Error"


def test_no_devices_is_an_empty_list_and_other_failures_raise() -> None:
    assert samples_from_output("No devices were found\n", "", 6) == []
    with pytest.raises(GpuError, match="exited 9: NVIDIA-SMI has failed"):
        samples_from_output(
            "", "NVIDIA-SMI has failed because it couldn't communicate with the driver", 9
        )


def test_open_backend_picks_nvidia_smi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_smi(tmp_path, f"cat {FIXTURES / T4}")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    backend = open_backend(GpuConfig(backend="nvidia_smi"))
    assert isinstance(backend, NvidiaSmiBackend) and len(backend.devices()) == 1
