"""The ``[recovery]`` table: how hpresil brings a node it drained back to service
(:mod:`hpresil.controller.recovery`): a GPU reset by the node's agent, or a reboot
through Slurm's RebootProgram, then a burn-in by the agent, then back to service;
or, for a lemon, marked for replacement with the site's hook run. ``enabled = false``
leaves every drained node to an operator (``hpresil resume NODE``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecoveryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # a node Slurm marked DOWN "Node unexpectedly rebooted": hpresil takes it (an
    # incident, its reason), burns it in and resumes it
    unexpected_reboots: bool = True
    # a GPU reset or a burn-in the node's agent has not answered in this long (the agent
    # down, the command lost with it): the step stops, the node left to an operator
    reset_timeout_s: float = Field(default=300.0, gt=0)
    burnin_timeout_s: float = Field(default=3600.0, gt=0)
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
