"""What the controller's remediation actions are and how they end: the kinds, the
status of an action, and what Slurm answered (one outcome enum per Slurm call).

Shared by the Slurm adapter that answers them, the store that keeps them and the API
that shows them; the API's schema names these classes (docs/openapi.json).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

ActionKind = Literal[
    "drain",
    "requeue",
    "requeue_node",
    "resume",
    "hold",
    "signal",
    "cancel",
    "notify",
    "reboot",
    "replace",
]


class ActionStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"  # decided against on execution (e.g. foreign drain, job finished)
    FAILED = "failed"  # retries exhausted


class DrainOutcome(StrEnum):
    DRAINED = "drained"  # hpresil set the drain now
    ALREADY_OURS = "already_ours"  # already drained with an hpresil reason: left as is
    FOREIGN = "foreign"  # drained (or down) by someone else: their reason kept


class RebootOutcome(StrEnum):
    REQUESTED = "requested"  # scontrol reboot ASAP nextstate=DOWN: Slurm reboots it when idle
    PENDING = "pending"  # a reboot was already requested or is under way: left as is
    NOT_OURS = "not_ours"  # not drained by hpresil (someone else's reason): never rebooted


class ResumeOutcome(StrEnum):
    RESUMED = "resumed"
    NOT_DRAINED = "not_drained"
    NOT_OURS = "not_ours"  # drained by someone else: hpresil never resumes it


class RequeueOutcome(StrEnum):
    REQUEUED = "requeued"
    HELD = "held"  # requeued and held: past its restart budget, or blamed
    NOT_RUNNING = "not_running"  # requeueing a finished job re-runs it: never done
    NOT_REQUEUEABLE = "not_requeueable"
    GONE = "gone"


class HoldOutcome(StrEnum):
    HELD = "held"  # pending: held where it waits
    REQUEUE_HELD = "requeue_held"  # running: stopped, back in the queue, held
    ALREADY_HELD = "already_held"
    FINISHED = "finished"  # nothing to hold
    GONE = "gone"
