"""What Slurm's clients answer while slurmctld cannot be reached (recorded from the lab,
Slurm 22.05.8): a retryable Slurm failure, never a parse error or an empty cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil.adapters.slurm import Slurm
from hpresil.adapters.slurm.cli import CliBackend
from hpresil.errors import SlurmError, SlurmUnavailable
from tests.unit.slurm.replay import calls, replay_bin


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return replay_bin(tmp_path / "bin")


@pytest.fixture
def down(bin_dir: Path) -> CliBackend:
    return CliBackend(bin_dir=bin_dir, timeout=10)


def test_sinfo_exit_0_with_an_errors_array_is_slurm_unavailable(down: CliBackend) -> None:
    with pytest.raises(SlurmUnavailable) as info:
        down.nodes()
    assert isinstance(info.value, SlurmError)  # what the facade and the executor retry
    assert info.value.returncode == 0 and info.value.argv[1:] == ["-N", "--json"]
    assert str(info.value).endswith("answered with an error: Unspecified error")
    assert "\n" not in str(info.value)


def test_squeue_errors_array_names_its_source(down: CliBackend) -> None:
    with pytest.raises(SlurmUnavailable, match="slurm_load_jobs: Failed while looking for jobs"):
        down.jobs()


def test_scontrol_without_slurmctld_exits_1(down: CliBackend) -> None:
    with pytest.raises(SlurmError, match="Unable to contact slurm controller") as info:
        down.set_node_state("node1", "drain", "hpresil: test")
    assert info.value.returncode == 1


def test_the_facade_retries_and_raises_the_slurm_error(bin_dir: Path, down: CliBackend) -> None:
    """A drain reads its node alone (``scontrol show node -o``; the recording is of
    ``scontrol update``: exit 1, "Unable to contact slurm controller", as both do)."""
    slurm = Slurm(down, retries=2, backoff_s=0)
    with pytest.raises(SlurmError, match="Unable to contact slurm controller"):
        slurm.drain("node1", "#1 gpu_lost_pcie xid 79 gpu 3")
    # tried three times; no update on a cluster it cannot see
    assert calls(bin_dir) == ["scontrol show node -o node1"] * 3
