"""The simulation backend: default layout, deterministic identities, state changes,
atomic writes, and one-line errors for a corrupt state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpresil.adapters.gpu import open_backend
from hpresil.adapters.gpu.base import normalize_bus_id
from hpresil.adapters.gpu.simulated import (
    BUS_IDS,
    SimulatedBackend,
    reset_state,
    set_gpu_state,
)
from hpresil.config import GpuConfig
from hpresil.errors import GpuError


@pytest.fixture
def template(tmp_path: Path) -> str:
    return str(tmp_path / "sim" / "{node}.json")


def test_first_use_creates_eight_h100s_on_the_hgx_layout(template: str, tmp_path: Path) -> None:
    gpus = SimulatedBackend(template, "node1").devices()
    assert (tmp_path / "sim" / "node1.json").exists()
    assert [g.identity.index for g in gpus] == list(range(8))
    assert [g.identity.pci_bus_id for g in gpus] == list(BUS_IDS)
    assert {g.identity.name for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert all(g.identity.uuid and g.identity.uuid.startswith("GPU-") for g in gpus)
    assert len({g.identity.serial for g in gpus}) == 8
    assert all(not g.lost and g.ecc_uncorrected_volatile == 0 for g in gpus)


def test_identities_are_deterministic_per_node(tmp_path: Path) -> None:
    a1 = SimulatedBackend(str(tmp_path / "a" / "{node}.json"), "node1").devices()
    a2 = SimulatedBackend(str(tmp_path / "b" / "{node}.json"), "node1").devices()
    b = SimulatedBackend(str(tmp_path / "c" / "{node}.json"), "node2").devices()
    assert [g.identity for g in a1] == [g.identity for g in a2]
    assert {g.identity.uuid for g in a1}.isdisjoint({g.identity.uuid for g in b})


def test_set_state_round_trip(template: str) -> None:
    backend = SimulatedBackend(template, "node1")
    set_gpu_state(template, "node1", 3, lost=True)
    set_gpu_state(template, "node1", 5, ecc_uncorrected_volatile=2, temperature_c=90)
    gpus = {g.identity.index: g for g in backend.devices()}
    assert gpus[3].lost and gpus[3].ecc_uncorrected_volatile is None  # lost answers nothing
    assert gpus[5].ecc_uncorrected_volatile == 2 and gpus[5].temperature_c == 90
    set_gpu_state(template, "node1", 6, present=False)
    assert 6 not in {g.identity.index for g in backend.devices()}
    reset_state(template, "node1")
    gpus2 = backend.devices()
    assert len(gpus2) == 8 and not any(g.lost or g.ecc_uncorrected_volatile for g in gpus2)


def test_unsupported_counter_is_none(template: str) -> None:
    sample = set_gpu_state(template, "node1", 0, ecc_uncorrected_volatile=None)
    assert sample.ecc_uncorrected_volatile is None and not sample.lost


def test_writes_are_atomic_and_leave_no_temporary_files(template: str, tmp_path: Path) -> None:
    for i in range(8):
        set_gpu_state(template, "node1", i, ecc_corrected_volatile=i)
    names = sorted(p.name for p in (tmp_path / "sim").iterdir())
    assert names == ["node1.json", "node1.json.lock"]
    json.loads((tmp_path / "sim" / "node1.json").read_text())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"node": "node1", "gpus": "many"}', "gpus"),
        ('{"node": "node1", "gpus": [{"index": -1}]}', "gpus.0"),
        ('{"node": "node1", "gpus": [], "extra": 1}', "extra"),
    ],
)
def test_corrupt_state_is_a_one_line_gpu_error(
    template: str, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "node1.json").write_text(content)
    with pytest.raises(GpuError, match=message) as info:
        SimulatedBackend(template, "node1").devices()
    assert "\n" not in str(info.value) and "node1.json" in str(info.value)


def test_bad_changes_are_refused(template: str) -> None:
    with pytest.raises(GpuError, match="unknown field 'colour'"):
        set_gpu_state(template, "node1", 0, colour="red")
    with pytest.raises(GpuError, match="no GPU index 8"):
        set_gpu_state(template, "node1", 8, lost=True)
    with pytest.raises(GpuError, match="ecc_uncorrected_volatile"):
        set_gpu_state(template, "node1", 0, ecc_uncorrected_volatile=-1)


def test_open_backend_picks_the_simulation(template: str) -> None:
    backend = open_backend(GpuConfig(backend="simulated", state_file=template), "node9")
    assert isinstance(backend, SimulatedBackend) and len(backend.devices()) == 8
    backend.close()


@pytest.mark.parametrize(
    ("text", "bdf"),
    [
        ("00000000:17:00.0", "0000:17:00"),
        ("0000:17:00", "0000:17:00"),
        ("17:00.0", "0000:17:00"),
        ("0009:01:00", "0009:01:00"),
        ("0000:DB:00.0", "0000:db:00"),
        ("nonsense", None),
        ("1:2:3:4", None),
    ],
)
def test_normalize_bus_id(text: str, bdf: str | None) -> None:
    assert normalize_bus_id(text) == bdf
