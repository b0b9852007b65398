"""What a healthy GPU of each model reaches in the burn-in (gpu-health.md section 5).

``matmul_tflops`` and ``membw_gbps`` are measured figures, not datasheet peaks: a
GPU below ``threshold`` (0.9) of them fails. Where no measured figure was found the
field is None and the GPU is judged against the fleet and node medians only.
``allreduce_floor_gbps`` is a minimum already (Azure's health checks): an 8-GPU node
below it fails, at messages of ``allreduce_bytes`` or more.

Sources:
- H100 SXM / H200 SXM: the reference table (gpu-health.md s5): BF16 dense peak 989
  TFLOPS; ~795 TFLOPS measured on H100 (stas00/ml-engineering, compute/accelerator,
  "Maximum Achievable Matmul FLOPS", H100 SXM 794.5); 769-798 TFLOPS measured on one
  H200 with PyTorch at 8192^3 bf16 (780 taken); ~4.3 TB/s device-to-device copy on
  one H200; 2,903 GB/s D2D on H100 80GB HBM3 SXM5 (AI @ Georgia Tech / Voltage Park
  benchmark, aigatech/vpbenchmarking).
- all_reduce floors: Azure/azurehpc-health-checks conf/nd96isr_h100_v5.conf
  (``check_nccl_allreduce 460.0 ... 16G``), conf/nd96isr_h200_v5.conf (431.0, 16G),
  conf/nd96amsr_a100_v4.conf (228.0, 4G).
- A100 SXM4 80GB: 312 TFLOPS BF16 dense peak, 2.0 TB/s HBM2e (NVIDIA datasheet, as
  tabled in stas00/ml-engineering); 271.2 TFLOPS measured (same MAMF table). No
  measured copy bandwidth found: membw_gbps is None.

Copy bandwidth counts both the read and the write: 2 x bytes / seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GIB = 1 << 30


@dataclass(frozen=True)
class GpuModel:
    key: str
    label: str
    pattern: re.Pattern[str]  # matched against the driver's name (NVML, CUDA)
    bf16_peak_tflops: float
    matmul_tflops: float | None  # bf16/fp16 dense GEMM, healthy GPU
    hbm_spec_gbps: float
    membw_gbps: float | None  # device-to-device copy, read + write
    allreduce_floor_gbps: float | None
    allreduce_gpus: int = 8
    allreduce_bytes: int = 16 * GIB


MODELS: tuple[GpuModel, ...] = (
    GpuModel(
        key="h100_sxm",
        label="H100 SXM",
        pattern=re.compile(r"^NVIDIA H100 80GB HBM3$|\bH100[ -]SXM"),
        bf16_peak_tflops=989.0,
        matmul_tflops=795.0,
        hbm_spec_gbps=3350.0,
        membw_gbps=2903.0,
        allreduce_floor_gbps=460.0,
    ),
    GpuModel(
        key="h200_sxm",
        label="H200 SXM",
        pattern=re.compile(r"^NVIDIA H200$|\bH200[ -]SXM"),
        bf16_peak_tflops=989.0,
        matmul_tflops=780.0,
        hbm_spec_gbps=4800.0,
        membw_gbps=4300.0,
        allreduce_floor_gbps=431.0,
    ),
    GpuModel(
        key="a100_sxm_80gb",
        label="A100 SXM 80GB",
        pattern=re.compile(r"\bA100-SXM4?-80GB$"),
        bf16_peak_tflops=312.0,
        matmul_tflops=271.0,
        hbm_spec_gbps=2039.0,
        membw_gbps=None,
        allreduce_floor_gbps=228.0,
        allreduce_bytes=4 * GIB,
    ),
)


def model_for(name: str | None) -> GpuModel | None:
    """The model a GPU name (``NVIDIA H100 80GB HBM3``) belongs to, if tabled."""
    if not name:
        return None
    return next((m for m in MODELS if m.pattern.search(name.strip())), None)
