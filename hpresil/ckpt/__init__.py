"""Checkpoint discovery and validation: which checkpoint under a directory a job can
resume from.

Standard library only, and cheap to import: a Slurm TaskProlog imports it. Formats
(one module each, with the framework's write order cited): PyTorch Lightning,
Hugging Face Trainer, DeepSpeed, Megatron-LM/Core, torch.distributed.checkpoint,
NeMo, and hpresil's own manifest for anything else.
"""

from hpresil.ckpt.model import Checkpoint, CheckpointRootError, Format
from hpresil.ckpt.scan import latest, scan

__all__ = ["Checkpoint", "CheckpointRootError", "Format", "latest", "scan"]
