"""Game-day injection: an XID line for a GPU named by NVML (through pynvml into the
NVML double), written where the agent reads the kernel log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.agent.inject import inject_xid
from hpresil.config import Config, parse
from hpresil.errors import UsageError
from hpresil.kernlog.parse import parse_line
from tests.nvmldouble import NvmlDouble


def _cfg(root: Path) -> Config:
    return parse(
        {
            "agent": {
                "kernel_log": {"source": "file", "path": str(root / "{node}.log")},
                "gpu": {"backend": "nvml"},
            }
        }
    )


def test_inject_xid_uses_the_gpus_pci_id_and_the_parser_reads_it_back(
    tmp_path: Path, nvml_double: NvmlDouble
) -> None:
    cfg = _cfg(tmp_path)
    line = inject_xid(cfg, "node4", 48, 7, pid=99, process="python3")
    assert line.startswith("NVRM: Xid (PCI:0000:db:00): 48, pid=99, name=python3, ")
    (written,) = (tmp_path / "node4.log").read_text().splitlines()
    event = parse_line(written, datetime.now(UTC))
    assert event is not None and (event.xid, event.pci_bus_id, event.pid) == (48, "0000:db:00", 99)


def test_inject_xid_on_a_missing_gpu_is_a_usage_error(
    tmp_path: Path, nvml_double: NvmlDouble
) -> None:
    with pytest.raises(UsageError, match="has no GPU 8"):
        inject_xid(_cfg(tmp_path), "node4", 79, 8)
