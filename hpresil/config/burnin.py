"""The burn-in's settings: one frozen schema (STYLE.md pattern 9).

:class:`hpresil.config.Config` mounts it (``[burnin]``); the CLI
overrides single fields from its options.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

Dtype = Literal["bf16", "fp16", "fp32"]

# a message size as all_reduce_perf takes it: bytes, or a K/M/G multiple
MESSAGE_SIZE = r"^[1-9][0-9]*[KMG]?$"


class BurninConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # per-GPU kernels
    duration_s: float = Field(default=30.0, gt=0)  # timed GEMMs per GPU, after warm-up
    warmup_iterations: int = Field(default=5, ge=1)  # untimed, per kernel
    matmul_size: int = Field(default=8192, ge=16, le=65536)  # N of the N x N GEMM
    dtype: Dtype = "bf16"  # falls back to fp16, then fp32, where a GPU lacks it
    membw_duration_s: float = Field(default=5.0, gt=0)  # timed device-to-device copies
    membw_mib: int = Field(default=1024, ge=1)  # copy buffer size
    threshold: float = Field(default=0.9, gt=0, le=1)  # below this share of a reference: FAIL

    # nccl-tests all_reduce_perf, when on PATH
    nccl: bool = True
    nccl_binary: str = Field(default="all_reduce_perf", min_length=1)
    nccl_min_bytes: str = Field(default="16G", pattern=MESSAGE_SIZE)
    nccl_max_bytes: str = Field(default="16G", pattern=MESSAGE_SIZE)
    nccl_timeout_s: float = Field(default=900.0, gt=0)
    # bus-bandwidth floors in GB/s by GPU model key (h100_sxm, ...) or GPU name; they
    # replace the built-in ones and apply whatever the GPU count and message size
    floors: dict[str, PositiveFloat] = Field(default_factory=dict)

    # gpu_burn, when on PATH
    gpu_burn: bool = True
    gpu_burn_binary: str = Field(default="gpu_burn", min_length=1)
    gpu_burn_s: int = Field(default=60, ge=1)
    # DCGM's level-3 diagnostic (targeted stress, power, memory bandwidth) when dcgmi is
    # installed; None: skip it.
    dcgm_level: int | None = Field(default=3, ge=1, le=4)
    gpu_burn_tensor_cores: bool = True  # -tc
    gpu_burn_compare: str | None = None  # compare.ptx; default: next to the binary
