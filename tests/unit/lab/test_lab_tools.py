"""The lab's stand-in GPU tools (scripts/lab-tools) run as subprocesses on an NVML-double
state file, their output read and judged by the product's own runners: the burn-in
(gpu_burn, all_reduce_perf), DCGM's diagnostic (dcgmi diag) and the GPU reset
(nvidia-smi -r)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import lab_tools_state as lab  # from scripts/: tests/conftest.py loads tests.labtools first
import pytest

from hpresil.burnin.gpulib import NoGpuLibrary
from hpresil.burnin.kernel import GpuLibrary
from hpresil.burnin.names import CHECK_GPU_BURN, CHECK_MATMUL, CHECK_MEMBW, CHECK_NCCL
from hpresil.burnin.run import run_burnin
from hpresil.checks.dcgm_diag import run_deep
from hpresil.config.burnin import BurninConfig
from hpresil.dcgm.dcgmi import Dcgmi, DcgmUnavailable
from hpresil.dcgm.model import DiagReport, DiagResult
from hpresil.vocab import CheckResult, GpuIdentity, Status
from hpresil.vocab.gpu import normalize_bus_id
from tests.labtools import SCRIPTS, gpu_double

TOOLS = SCRIPTS / "lab-tools"
QUICK = BurninConfig(gpu_burn_s=1)  # all_reduce_perf at 16 GiB, as the default


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A healthy 8 x H100 node, named in the environment as the lab names it."""
    path = tmp_path / "node1.state"
    gpu_double.write_node(path, "node1")
    monkeypatch.setenv(lab.STATE_ENV, str(path))
    yield path


def tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOLS / name), *args], capture_output=True, text=True, timeout=60, check=False
    )


def identities(path: Path) -> list[GpuIdentity]:
    return [
        GpuIdentity(
            index=g.index,
            uuid=g.uuid,
            serial=g.serial,
            pci_bus_id=normalize_bus_id(g.pci_bus_id),
            name=g.name,
        )
        for g in lab.node(path).gpus
    ]


def no_cuda() -> GpuLibrary:
    raise NoGpuLibrary("the lab has no CUDA")


def on_path(name: str) -> str | None:
    found = TOOLS / name
    return str(found) if found.is_file() else None


def burnin(path: Path, cfg: BurninConfig = QUICK) -> list[CheckResult]:
    return run_burnin(cfg, identities(path), progress=False, library=no_cuda, which=on_path)


def dcgm(path: Path, level: int = 3) -> list[CheckResult]:
    return run_deep(Dcgmi(str(TOOLS / "dcgmi")), level, lambda: True, gpus=identities(path))


def per_gpu(results: list[CheckResult], check: str) -> dict[int, Status]:
    return {r.gpu.index: r.status for r in results if r.check == check and r.gpu is not None}


def one(results: list[CheckResult], check: str) -> CheckResult:
    (found,) = [r for r in results if r.check == check]
    return found


def failing(results: list[CheckResult]) -> set[tuple[str, int | None]]:
    return {(r.check, r.gpu.index if r.gpu else None) for r in results if r.status is Status.FAIL}


# --- a healthy node passes everything ---


def test_healthy_node_passes_the_burnin_and_dcgm(state: Path) -> None:
    results = burnin(state)
    assert per_gpu(results, CHECK_GPU_BURN) == dict.fromkeys(range(8), Status.OK)
    nccl = one(results, CHECK_NCCL)
    assert nccl.status is Status.OK, nccl.summary
    assert nccl.evidence["floor_gbps"] == 460.0 and nccl.evidence["busbw_gbps"] > 470
    assert nccl.evidence["wrong"] == 0 and nccl.evidence["gpus"] == 8
    kernels = {r.status for r in results if r.check in (CHECK_MATMUL, CHECK_MEMBW)}
    assert kernels == {Status.UNSUPPORTED}  # no CUDA in the lab: not judged
    diag = dcgm(state)
    assert {r.status for r in diag} == {Status.OK}
    assert sorted(r.gpu.index for r in diag if r.gpu) == list(range(8))


@pytest.mark.parametrize(("preset", "floor"), [("h200-sxm", 431.0), ("a100-sxm4", 228.0)])
def test_healthy_nodes_of_other_presets_clear_their_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset: str, floor: float
) -> None:
    path = tmp_path / "node2.state"
    gpu_double.write_node(path, "node2", preset=preset)
    monkeypatch.setenv(lab.STATE_ENV, str(path))
    nccl = one(burnin(path, BurninConfig(gpu_burn=False)), CHECK_NCCL)
    assert nccl.status is Status.OK and nccl.evidence["floor_gbps"] == floor


def test_gpu_burn_prints_the_real_tools_lines(state: Path) -> None:
    done = tool("gpu_burn", "-tc", "-c", "/opt/gpu-burn/compare.ptx", "1")
    assert done.returncode == 0
    gpu = lab.node(state).gpus[4]
    assert f"GPU 4: {gpu.name} (UUID: {gpu.uuid})" in done.stdout
    assert "Using compare file: /opt/gpu-burn/compare.ptx\nBurning for 1 seconds." in done.stdout
    assert done.stdout.endswith("Tested 8 GPUs:\n" + "".join(f"\tGPU {i}: OK\n" for i in range(8)))


# --- faults: a lost GPU, a GPU broken for good ---


def test_a_lost_gpu_fails_the_burnin_and_dcgm_by_name(state: Path) -> None:
    gpu_double.set_gpu(state, 3, lost=True)
    results = burnin(state)
    assert per_gpu(results, CHECK_GPU_BURN) == {
        i: Status.FAIL if i == 3 else Status.OK for i in range(8)
    }
    nccl = one(results, CHECK_NCCL)
    assert nccl.status is not Status.OK and "unknown error" in nccl.summary
    diag = dcgm(state, level=1)
    assert failing(diag) == {("dcgm_diag", 3)}
    bad = next(r for r in diag if r.status is Status.FAIL)
    assert "GPU 3 has fallen off the bus" in bad.summary


def test_every_gpu_lost_aborts_gpu_burn_as_the_real_tool(state: Path) -> None:
    for i in range(8):
        gpu_double.set_gpu(state, i, lost=True)
    done = tool("gpu_burn", "1")
    assert done.returncode == 123 and "No clients are alive!  Aborting" in done.stderr
    assert "Tested" not in done.stdout


def test_a_broken_gpu_fails_the_burnin_and_dcgm(state: Path) -> None:
    lab.set_broken(state, 5)
    assert lab.broken(state) == {5}
    results = burnin(state)
    assert per_gpu(results, CHECK_GPU_BURN)[5] is Status.FAIL
    assert {s for i, s in per_gpu(results, CHECK_GPU_BURN).items() if i != 5} == {Status.OK}
    nccl = one(results, CHECK_NCCL)
    assert nccl.status is Status.FAIL and nccl.evidence["wrong"] > 0
    assert failing(dcgm(state, level=3)) == {("dcgm_diag", 5)}
    lab.set_broken(state, 5, broken=False)
    assert lab.broken(state) == set()


def test_dcgm_levels_and_exit_codes_follow_dcgmi(state: Path) -> None:
    gpu_double.set_gpu(state, 2, ecc_volatile_uncorrected_dram=4)
    gpu_double.set_gpu(state, 6, row_remap_pending=True)
    first = report(Dcgmi(str(TOOLS / "dcgmi")).diag(1))
    assert first.failing_gpus == [6] and first.exit_code == 226  # RESET severity
    second = report(Dcgmi(str(TOOLS / "dcgmi")).diag(2, iterations=2))
    assert second.failing_gpus == [2, 6] and second.exit_code == 205  # ISOLATE: the DBEs
    assert second.iterations == 1 and second.overall_result == "Fail"  # stopped at the failure
    memory = [t for t in second.tests if t.name == "memory"]
    assert [t.result for t in memory] == [DiagResult.FAIL]  # GPU 2's DBEs; GPU 6 skipped


def report(answer: DiagReport | DcgmUnavailable) -> DiagReport:
    assert isinstance(answer, DiagReport), answer
    return answer


def test_dcgmi_answers_other_subsystems_as_without_a_host_engine(state: Path) -> None:
    assert isinstance(Dcgmi(str(TOOLS / "dcgmi")).health(), DcgmUnavailable)
    healthy = report(Dcgmi(str(TOOLS / "dcgmi")).diag(3, iterations=2))
    assert healthy.overall is DiagResult.PASS and healthy.iterations == 2
    assert tool("dcgmi", "diag", "-r", "3").returncode == 255  # the stand-in needs -j


# --- nvidia-smi -r ---


def test_a_reset_clears_ecc_and_a_pending_remap(state: Path) -> None:
    gpu_double.set_gpu(state, 2, ecc_volatile_uncorrected_dram=4, row_remap_pending=True)
    assert failing(dcgm(state, level=2)) == {("dcgm_diag", 2)}
    done = tool("nvidia-smi", "-r", "-i", "00000000:3A:00.0")
    assert done.returncode == 0, done.stdout
    assert done.stdout == "GPU 00000000:3A:00.0 was successfully reset.\n"
    gpu = lab.node(state).gpus[2]
    assert gpu.faults == () and gpu.uncorrected == 0
    assert {r.status for r in dcgm(state, level=2)} == {Status.OK}


def test_a_reset_of_every_gpu_and_by_index(state: Path) -> None:
    done = tool("nvidia-smi", "--gpu-reset")
    assert done.returncode == 0 and done.stdout.count("was successfully reset.") == 8
    assert tool("nvidia-smi", "-r", "-i", "7").stdout.startswith("GPU 00000000:DB:00.0 was")
    missing = tool("nvidia-smi", "-r", "-i", "8")
    assert missing.returncode == 6 and missing.stdout == "No devices were found\n"


def test_a_lost_or_broken_gpu_refuses_the_reset(state: Path) -> None:
    gpu_double.set_gpu(state, 3, lost=True)
    lab.set_broken(state, 4)
    lost = tool("nvidia-smi", "-r", "-i", "3")
    assert lost.returncode == 15
    assert "00000000:5D:00.0: GPU is lost.  Reboot the system to recover this GPU" in lost.stdout
    broken = tool("nvidia-smi", "-r", "-i", "4")
    assert broken.returncode == 255
    assert "could not be reset:\n  GPU 00000000:9A:00.0: Unknown Error" in broken.stdout
    assert lab.node(state).gpus[4].faults == (lab.BROKEN,)  # a reset mends nothing broken


def test_a_busy_fabric_manager_refuses_every_reset(state: Path) -> None:
    gpu_double.set_gpu(state, 1, ecc_volatile_uncorrected_sram=1)
    lab.set_reset_busy(state)
    assert lab.reset_busy(state)
    one_gpu = tool("nvidia-smi", "-r", "-i", "1")
    assert one_gpu.returncode == 255
    assert "GPU 00000000:2A:00.0: In use by another client" in one_gpu.stdout
    assert "1 device is currently being used" in one_gpu.stdout
    assert "Fabric Manager" in one_gpu.stdout
    every = tool("nvidia-smi", "-r")
    assert every.returncode == 255 and "8 devices are currently being used" in every.stdout
    assert lab.node(state).gpus[1].faults == (lab.ECC,)  # nothing was reset
    lab.set_reset_busy(state, busy=False)
    assert tool("nvidia-smi", "-r", "-i", "1").returncode == 0


def test_other_invocations_are_refused(state: Path) -> None:
    for argv in (["-q"], ["-L"], [], ["-r", "-q"], ["-r", "-i"]):
        done = tool("nvidia-smi", *argv)
        assert done.returncode == 2, argv
        assert done.stderr == "lab stand-in: only -r/--gpu-reset\n"


def test_without_the_state_variable_the_tools_say_so(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(lab.STATE_ENV)
    for name, argv in (
        ("gpu_burn", ["1"]),
        ("nvidia-smi", ["-r"]),
        ("dcgmi", ["diag", "-r", "1", "-j"]),
    ):
        done = tool(name, *argv)
        assert done.returncode != 0 and lab.STATE_ENV in done.stderr
