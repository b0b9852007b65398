"""Check names and evidence keys shared by the burn-in and the controller's fleet median."""

from __future__ import annotations

CHECK_MATMUL = "burnin_matmul"
CHECK_MEMBW = "burnin_membw"
CHECK_NCCL = "burnin_nccl"
CHECK_GPU_BURN = "burnin_gpu_burn"
CHECKS = (CHECK_MATMUL, CHECK_MEMBW, CHECK_NCCL, CHECK_GPU_BURN)

# per-GPU figures: evidence key -> the check that carries it (the fleet median's metrics)
TFLOPS = "tflops"
MEMBW_GBPS = "membw_gbps"
FLEET_METRICS = {TFLOPS: CHECK_MATMUL, MEMBW_GBPS: CHECK_MEMBW}

BUSBW_GBPS = "busbw_gbps"
