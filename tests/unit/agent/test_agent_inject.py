"""Game-day injection through the configured adapters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.adapters.gpu.simulated import SimulatedBackend
from hpresil.agent.inject import inject_gpu, inject_xid, reset_gpus
from hpresil.config import Config, parse
from hpresil.errors import HpresilError, UsageError
from hpresil.kernlog.parse import parse_line


def _cfg(root: Path, backend: str = "simulated") -> Config:
    return parse(
        {
            "agent": {
                "kernel_log": {"source": "file", "path": str(root / "{node}.log")},
                "gpu": {"backend": backend, "state_file": str(root / "sim" / "{node}.json")},
            }
        }
    )


def test_inject_xid_uses_the_gpus_pci_id_and_the_parser_reads_it_back(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    line = inject_xid(cfg, "node4", 48, 7, pid=99, process="python3")
    assert line.startswith("NVRM: Xid (PCI:0000:db:00): 48, pid=99, name=python3, ")
    (written,) = (tmp_path / "node4.log").read_text().splitlines()
    event = parse_line(written, datetime.now(UTC))
    assert event is not None and (event.xid, event.pci_bus_id, event.pid) == (48, "0000:db:00", 99)


def test_inject_xid_on_a_missing_gpu_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="has no GPU 8"):
        inject_xid(_cfg(tmp_path), "node4", 79, 8)


def test_inject_gpu_changes_the_simulation_and_reset_undoes_it(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    sample = inject_gpu(cfg, "node4", 2, lost=True)
    assert sample.lost and sample.identity.index == 2
    inject_gpu(cfg, "node4", 3, ecc_uncorrected=5)
    backend = SimulatedBackend(cfg.agent.gpu.state_file, "node4")
    gpus = {g.identity.index: g for g in backend.devices()}
    assert gpus[2].lost and gpus[3].ecc_uncorrected_volatile == 5
    reset_gpus(cfg, "node4")
    assert not any(g.lost or g.ecc_uncorrected_volatile for g in backend.devices())


def test_inject_gpu_needs_the_simulated_backend(tmp_path: Path) -> None:
    with pytest.raises(HpresilError, match="needs the simulated GPU backend"):
        inject_gpu(_cfg(tmp_path, backend="nvml"), "node4", 0, lost=True)


def test_inject_gpu_with_nothing_to_change_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to inject"):
        inject_gpu(_cfg(tmp_path), "node4", 0)
