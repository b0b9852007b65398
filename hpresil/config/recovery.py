"""The ``[recovery]`` table: how hpresil brings a node it drained back to service
(:mod:`hpresil.controller.recovery`).

The ladder is built a rung at a time. Today it reboots, through Slurm's
RebootProgram, a node hpresil drained for a fault whose action is a GPU reset or a
reboot, once no job runs there, and waits for it to come back; and for a fault whose
action is *replace* it marks the node for replacement and runs the site's hook. The node comes back
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
    # The replace rung's hook, for an incident the policy answers with *replace* (a
    # fault recurring on one GPU climbed the ladder): a command run with the incident
    # as JSON on its standard input, and/or a webhook POSTed {"event": "node_replace",
    # "incident": ...}: open an RMA ticket, tell the provisioning system. Retried with
    # the executor's back-off until it succeeds: the incident id is the idempotency key.
    replace_command: tuple[str, ...] = ()  # argv, e.g. ["/usr/local/bin/open-rma"]
    replace_webhook_url: str = ""
    replace_timeout_s: float = Field(default=30.0, gt=0)
