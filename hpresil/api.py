"""The controller's HTTP API: request and response bodies, shared by server and clients.

Routes (all need a credential except ``/healthz`` and ``/openapi.json``: the cluster
token as a bearer token; a node's signed request, which may only read, send its own
reports and drain itself; or a person's MUNGE credential, which may read, and write
when the person is an operator; :mod:`hpresil.controller.callers`):

=======  ============================  ==========================  =====================
method   path                          body                        answer
=======  ============================  ==========================  =====================
POST     /v1/reports                   :class:`vocab.Report`       :class:`ReportAck`
GET      /v1/nodes                                                 list[:class:`NodeView`]
POST     /v1/nodes/{node}/drain        :class:`DrainRequest`       :class:`DrainAnswer`
POST     /v1/nodes/{node}/resume                                   :class:`ResumeAnswer`
GET      /v1/incidents?status=&node=                               list[:class:`IncidentView`]
GET      /v1/incidents/{id}                                        :class:`IncidentView`
GET      /v1/stats/mttf?by=                                        :class:`MttfView`
GET      /v1/stats/mttr?since=                                     :class:`MttrView`
GET      /v1/burnin/median?model=                                  :class:`BurninMedianView`
GET      /v1/jobs?idle=&all=                                       list[:class:`JobView`]
GET      /v1/jobs/{job_id}                                         :class:`JobView`
GET      /v1/breakers?tripped=                                     list[:class:`BreakerView`]
POST     /v1/breakers/{category}/reset                             :class:`BreakerView`
GET      /healthz                                                  ``{"ok": true}`` (503 and
                                                                   ``"ok": false`` while the
                                                                   database is away)
=======  ============================  ==========================  =====================

Errors answer ``{"detail": "<one line>"}`` with 4xx (the request is wrong; retrying it
will not help) or 5xx (try again later).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hpresil.vocab import Action, Category, GpuIdentity, Health
from hpresil.vocab.actions import (
    ActionKind,
    ActionStatus,
    DrainOutcome,
    RequeueOutcome,
    ResumeOutcome,
)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorDetail(_View):
    """Every error's body: one line."""

    detail: str


class NodeCommand(_View):
    """A recovery step the node's agent runs (:mod:`hpresil.controller.commands`): given
    in the answer to each of its reports until the report of its results is taken (the
    agent runs an id once); the results come back as a report naming it (``command``)."""

    id: int  # the recovery step's
    kind: Literal["reset_gpu", "burnin"]
    gpus: list[str] = []  # reset_gpu: the GPUs (PCI bus ids, else indexes); none: all


class ReportAck(_View):
    accepted: bool
    duplicate: bool  # the report_id was seen before: nothing new was stored
    incidents: list[int] = []  # incidents this report opened or added to
    # the report's digest is not the state the controller holds: send the whole state
    send_state: bool = False
    # what the controller asks this node's agent to do; left out of the answer when
    # none, so that an agent older than the field still reads it (a rolling upgrade)
    commands: list[NodeCommand] = Field(default_factory=list, exclude_if=lambda v: not v)


MAX_NODES = 100_000  # a page, or a host list, names at most this many nodes


class NodeFilter(BaseModel):
    """``GET /v1/nodes``'s query: which nodes, and which page of them. Nodes come in
    natural order (``node2`` before ``node10``); when more follow than ``limit``, the
    header ``X-Next-After`` names the last one given, and ``after=<it>`` asks for the
    next page."""

    nodes: str | None = Field(
        None, max_length=4096, description="only these: a Slurm host list, gpu[001-128],login1"
    )
    state: str | None = Field(
        None, max_length=64, description="only those whose Slurm state contains it: drain, idle"
    )
    unhealthy: bool = Field(False, description="only those whose health is not ok")
    limit: int | None = Field(
        None, ge=1, le=MAX_NODES, description="at most this many; more: header X-Next-After"
    )
    after: str | None = Field(
        None, max_length=128, description="the page after this node (node2 before node10)"
    )


class NodeView(_View):
    name: str
    slurm_state: str | None  # as scontrol prints it, e.g. "MIXED+DRAIN"; None if unknown
    slurm_reason: str | None
    drained_by_hpresil: bool
    health: Health
    open_incident: int | None
    last_report_at: datetime | None
    last_report_age_s: float | None
    gpus: int | None  # GPUs in the last report
    held_by: str | None = None  # an operator holds it (``hpresil hold``): the ladder waits


class ActionView(_View):
    id: int
    kind: ActionKind
    target: str  # node name, or job id as text
    why: str
    status: ActionStatus
    outcome: str | None  # DrainOutcome / RequeueOutcome / ResumeOutcome / HoldOutcome value
    attempts: int
    error: str | None
    created_at: datetime
    done_at: datetime | None


class RecoveryStepView(_View):
    """One step of the incident's recovery ladder (``hpresil.controller.recovery``)."""

    rung: Literal["gate", "reset_gpu", "reboot", "burnin", "resume", "replace"]
    status: Literal["running", "passed", "failed", "stopped"]
    why: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None  # what ended it


class AffectedJob(_View):
    job_id: int
    submit_time: datetime
    name: str
    requeue_outcome: RequeueOutcome | None
    requeued_at: datetime | None
    restarted_at: datetime | None  # first seen RUNNING again after the requeue
    restarted_node: str | None


class SharedRef(_View):
    """The shared component an incident is put down to."""

    id: int  # the shared incident's
    kind: Literal["switch", "rack", "power"]
    component: str


class IncidentView(_View):
    id: int
    node: str
    job_id: int | None = None  # a job's incident (a hang, or a fault blamed on the job)
    status: Literal["open", "resolved"]
    category: Category
    action: Action  # the most severe action suggested by the findings
    hardware: bool  # counts against the node's MTTF
    shared: SharedRef | None = None  # put down to a switch, rack or power domain
    summary: str
    xid: int | None
    gpu: GpuIdentity | None
    observed_at: datetime  # when the agent saw it
    detected_at: datetime  # when the controller received it
    drained_at: datetime | None
    resolved_at: datetime | None
    findings: int  # how many results were attached
    jobs: list[AffectedJob] = []
    actions: list[ActionView] = []
    recovery: list[RecoveryStepView] = []  # its ladder's steps, oldest first


class SharedFaultView(_View):
    """Nodes under one switch, rack or power domain failing alike at once: one
    incident on the component; the nodes' incidents are kept under it and do not
    count against their MTTF."""

    id: int
    kind: Literal["switch", "rack", "power"]
    component: str
    category: Category
    status: Literal["open", "resolved"]
    size: int  # nodes under the component
    nodes: list[str]  # the nodes that failed
    incidents: list[int]  # the node incidents under it
    why: str
    opened_at: datetime
    resolved_at: datetime | None
    merged_into: int | None  # a larger component's shared incident took it over


class DrainRequest(_View):
    reason: str = Field(min_length=1, max_length=200)
    # the burn-in gate: the node's agent burns it in, and hpresil returns it to service
    # only when the burn-in passes (a new node, a repaired one)
    gate: bool = False


class HoldRequest(_View):
    why: str = Field(min_length=1, max_length=200)


class HoldView(_View):
    """An operator's hold on a node: the recovery ladder leaves it alone (none: released)."""

    node: str
    held_by: str | None
    why: str | None
    since: datetime | None


class DrainAnswer(_View):
    outcome: DrainOutcome
    incident: int | None


class BreakerView(_View):
    """A breaker: one failure category that fired on too many nodes within the window;
    its drains are held back while it is tripped (``reset_at`` empty)."""

    id: int
    category: Category
    tripped_at: datetime
    nodes: list[str]
    why: str
    held_back: int  # drains held back since it tripped
    reset_at: datetime | None
    reset_by: str | None


class ResumeAnswer(_View):
    outcome: ResumeOutcome
    resolved_incidents: list[int] = []


class MttfRow(_View):
    key: str  # node name, category, or "all"
    nodes: int
    exposure_h: float  # node-hours in service (censored: nodes without failures count too)
    failures: int  # hardware incidents
    mttf_h: float | None  # exposure / failures; None with no failure
    repairs: int  # resolved incidents with a drain time
    mttr_h: float | None  # mean drained -> returned to service


class MttfView(_View):
    by: Literal["all", "node", "category"]
    since: datetime | None
    until: datetime
    rows: list[MttfRow]
    total: MttfRow


class Durations(_View):
    """Spans of time in seconds: how many, their median, 95th percentile and mean
    (None without any)."""

    n: int
    p50_s: float | None
    p95_s: float | None
    mean_s: float | None


class MttrRung(_View):
    """One rung of the recovery ladder: its steps, how they ended, the time in it."""

    rung: Literal["reset_gpu", "reboot", "burnin", "resume", "replace"]
    steps: int
    passed: int
    failed: int
    stopped: int
    running: int  # not ended yet
    took: Durations  # ended steps: ended_at - started_at


class MttrRow(_View):
    """Drained incidents of one category (or "all"), each in one of back, replaced,
    by_hand or open."""

    key: str  # category, or "all"
    incidents: int  # detected in the window, the node drained
    back: int  # back in service by the ladder (a passed resume step)
    mttr: Durations  # detected -> that step's end
    mttr_from_drain: Durations  # drained -> that step's end
    by_hand: int  # else resolved without it (hpresil resume, or resumed in Slurm)
    by_hand_mttr: Durations  # detected -> resolved
    replaced: int  # else climbed to the replace rung
    open: int  # else still open


class MttrCleared(_View):
    """The incidents back in service that one remediation rung cleared: the last
    reset_gpu or reboot that passed before the passing burn-in (None: burn-in only)."""

    rung: Literal["reset_gpu", "reboot"] | None
    incidents: int
    mttr: Durations  # detected -> back in service


class MttrView(_View):
    since: datetime  # incidents detected from here (default: 30 days back) ...
    until: datetime  # ... to the controller's now
    rungs: list[MttrRung]  # every rung, in ladder order
    categories: list[MttrRow]  # those with incidents in the window
    total: MttrRow
    cleared_by: list[MttrCleared]  # reset_gpu, reboot, None (burn-in only)


class BurninMetric(_View):
    median: float
    samples: int  # GPUs counted (each node's latest result per GPU)
    nodes: int


class BurninMedianView(_View):
    """Fleet medians of the burn-in's per-GPU figures for one GPU model."""

    model: str  # the GPU name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3"
    dtype: str | None  # GEMM figures narrowed to this dtype, if given
    size: int | None  # and to this matrix size
    metrics: dict[str, BurninMetric]  # "tflops", "membw_gbps"; absent: no sample yet


class InterruptionView(_View):
    at: datetime  # when the job was stopped
    node: str | None  # where it was running
    cause: str
    incident: int | None
    checkpoint: str | None  # the newest complete checkpoint then: what it resumes from
    checkpoint_step: int | None
    lost_s: float | None  # work lost: time since that checkpoint (or since the start)
    resumed_at: datetime | None  # running again
    resumed_node: str | None


class JobView(_View):
    job_id: int
    name: str
    user: str
    status: Literal["running", "pending", "held", "hung", "ended", "other"]
    state: str  # Slurm's, last seen
    nodes: str
    protected: bool  # named a checkpoint directory
    ckpt_dir: str | None
    restarts: int
    budget: int  # restarts allowed before the job is held
    checkpoint: str | None  # newest complete checkpoint an agent found
    checkpoint_step: int | None
    checkpoint_at: datetime | None
    since_checkpoint_s: float | None  # work an interruption now would lose (running jobs)
    step: int | None
    progress_at: datetime | None
    progress_source: str | None
    gpus: int
    gpu_util_pct: float | None
    idle_since: datetime | None
    idle: bool  # below the threshold for the whole idle window
    held_reason: str | None
    blamed: str | None
    interruptions: list[InterruptionView] = []
    mean_lost_s: float | None = None  # over interruptions with a known loss
    first_seen_at: datetime
    ended_at: datetime | None
