"""Burn-in: stress a node's GPUs and judge the figures (issue 3).

Per GPU, a bf16 GEMM (TFLOPS) and a device-to-device copy (memory bandwidth) timed
by :func:`kernel.measure` through a small :class:`kernel.Kernel` protocol (PyTorch
or CuPy, imported lazily: :mod:`.gpulib`); per node, nccl-tests ``all_reduce_perf``
(:mod:`.nccl`) and ``gpu_burn`` (:mod:`.gpu_burn`) when installed. :mod:`.judge`
turns figures into ordinary :class:`~hpresil.vocab.CheckResult` s against the
expected figures per GPU model (:mod:`.expected`), the fleet median the controller
computes and the node's own median; :func:`run.run_burnin` ties it together.

Nothing here imports a GPU library at import time, and a node without one gets
UNSUPPORTED results, never a failure.
"""
