"""The ``[recovery]`` table: how hpresil brings a node it drained back to service
(:mod:`hpresil.controller.recovery`).

The ladder is built a rung at a time. Today it reboots, through Slurm's
RebootProgram, a node hpresil drained for a fault whose action is a GPU reset or a
reboot, once no job runs there, and waits for it to come back. The node comes back
DOWN with hpresil's reason and takes no job; the burn-in that returns it to service
is the next rung, so until then ``enabled`` is off by default and an operator
resumes a rebooted node (``hpresil resume NODE``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecoveryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    # a node not back (slurmd registered after a new boot) this long after Slurm was
    # asked to reboot it: the step fails (Slurm's ResumeTimeout may mark it down first)
    reboot_timeout_s: float = Field(default=900.0, gt=0)
