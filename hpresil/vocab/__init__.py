"""The one typed vocabulary shared by agent, controller, CLI and database.

Everything that crosses a process boundary (agent report, API answer, stored row)
is expressed in these enums and frozen records. The records are pydantic models so
that the same definition validates a report on the wire and types it in code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class Status(StrEnum):
    """What a check concluded."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"  # the check could not run (adapter error, timeout)
    UNSUPPORTED = "unsupported"  # the hardware or driver does not offer it: never unhealthy

    @property
    def rank(self) -> int:
        """Severity, for picking the worst: UNSUPPORTED < OK < WARN < UNKNOWN < FAIL
        (a known fault beats a doubt, a doubt beats a warning)."""
        return _STATUS_ORDER.index(self)

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """The most severe of ``statuses`` by :attr:`rank`; OK when there are none."""
        return max(statuses, key=lambda s: s.rank, default=Status.OK)


_STATUS_ORDER = (Status.UNSUPPORTED, Status.OK, Status.WARN, Status.UNKNOWN, Status.FAIL)


# A node's state, as the controller shows it: FAIL with an open hardware incident,
# else UNKNOWN (never reported) or STALE (no report for too long), else the worst of
# its latest results' FAIL and WARN (the Status values), OK without either. No
# docstring: it would become the description of the published ``Health`` schema.
class Health(StrEnum):
    OK = Status.OK.value
    WARN = Status.WARN.value
    FAIL = Status.FAIL.value
    STALE = "stale"  # no report within controller.stale_after_s
    UNKNOWN = "unknown"  # never reported


class Action(StrEnum):
    """Suggested remediation, ordered from least to most disruptive.

    ``drain`` lets running jobs finish; ``drain_now`` and everything above it also
    requeues the jobs running on the node.
    """

    NONE = "none"
    WATCH = "watch"
    DRAIN = "drain"
    DRAIN_NOW = "drain_now"
    RESET_GPU = "reset_gpu"
    REBOOT = "reboot"
    REPLACE = "replace"

    @property
    def rank(self) -> int:
        return _ACTION_ORDER.index(self)

    @classmethod
    def worst(cls, actions: Iterable[Action]) -> Action:
        """The most disruptive of ``actions``; NONE when there are none."""
        return max(actions, key=lambda a: a.rank, default=Action.NONE)

    @property
    def drains(self) -> bool:
        return self.rank >= Action.DRAIN.rank

    @property
    def requeues_jobs(self) -> bool:
        return self.rank >= Action.DRAIN_NOW.rank


_ACTION_ORDER = list(Action)


class Category(StrEnum):
    """Failure categories (reference gpu-health.md, section 7)."""

    HBM_ECC = "hbm_ecc"
    SRAM_ECC = "sram_ecc"
    GPU_LOST_PCIE = "gpu_lost_pcie"
    NVLINK_NVSWITCH = "nvlink_nvswitch"
    GPU_FW_GSP = "gpu_fw_gsp"
    GPU_HANG = "gpu_hang"
    THERMAL_POWER = "thermal_power"
    PCIE_LINK = "pcie_link"
    IB_NETWORK = "ib_network"
    PERF_DEGRADED = "perf_degraded"
    DRIVER_SW = "driver_sw"
    HOST = "host"
    APP = "app"
    OPERATOR = "operator"  # a person drained the node through hpresil
    JOB_HANG = "job_hang"  # a job stopped making progress: the job's incident, not the node's
    UNKNOWN = "unknown"

    @property
    def is_hardware(self) -> bool:
        """Whether a failure of this category counts against a node's MTTF."""
        return self not in (Category.APP, Category.OPERATOR, Category.JOB_HANG)


# --- wire bounds: what the controller's columns hold ---
INT32_MAX = 2**31 - 1  # the store's INTEGER columns (seq, job ids, steps, XIDs, GPU indexes)
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
SignedInt = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
EVIDENCE_MAX_DEPTH = 8  # nesting of dicts and lists in a result's evidence
EVIDENCE_MAX_ITEMS = 1000  # keys and list items in a result's evidence, all levels together


def _not_before_2000(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError("must not be before 2000-01-01T00:00:00Z")
    return value


# A time stamped by the agent's own clock (sent_at, observed_at): aware, and not absurdly
# early. Times too far ahead of the controller's clock are refused by the controller
# (it alone knows "now"). A naive time is refused: compared with aware ones it raises.
AgentTime = Annotated[AwareDatetime, AfterValidator(_not_before_2000)]
# A time read from a job's files (heartbeat, checkpoint mtime): aware, otherwise taken
# as it is; a job writing odd times must not get its node's reports refused.
FileTime = AwareDatetime


def _bounded_evidence(value: dict[str, Any]) -> dict[str, Any]:
    budget = [EVIDENCE_MAX_ITEMS]
    _walk(value, 1, budget)
    return value


def _walk(value: object, depth: int, budget: list[int]) -> None:
    if not isinstance(value, dict | list):
        return
    if depth > EVIDENCE_MAX_DEPTH:
        raise ValueError(f"nested deeper than {EVIDENCE_MAX_DEPTH} levels")
    budget[0] -= len(value)
    if budget[0] < 0:
        raise ValueError(f"more than {EVIDENCE_MAX_ITEMS} keys and items in all")
    for item in value.values() if isinstance(value, dict) else value:
        _walk(item, depth + 1, budget)


Evidence = Annotated[dict[str, Any], AfterValidator(_bounded_evidence)]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuIdentity(_Record):
    """Who a GPU is, for the incident ledger and RMA."""

    index: Count
    uuid: str | None = None
    serial: str | None = None
    pci_bus_id: str | None = None  # normalised "dddd:bb:dd"
    name: str | None = None


class XidEvent(_Record):
    """One NVIDIA XID (or GPU-lost) line, or one NVSwitch SXid line, from the kernel log.

    ``kind`` says which number space ``xid`` is in: a GPU XID, or (``"sxid"``) the
    SXid number of NVSwitch ``switch`` at ``pci_bus_id``. The optional fields carry
    what a line adds to the number; None when the line does not say.
    """

    xid: int = Field(ge=0)
    pci_bus_id: str  # normalised "dddd:bb:dd"
    pid: int | None = None
    process: str | None = None
    message: str = ""
    raw: str = ""
    seen_at: datetime  # when the agent read the line
    kind: Literal["xid", "sxid"] = "xid"
    gpu_instance: int | None = None  # MIG "GPU-I:NN"
    compute_instance: int | None = None  # MIG "GPU-CI:NN"
    switch: int | None = None  # SXid: N of "nvidia-nvswitchN"
    fatal: bool | None = None  # SXid and NVLink5 XIDs: "Fatal" / "Non-fatal" in the text
    recovery_action: int | None = None  # XID 154: the new value (0 none ... 4 drain+reset)
    root_xid: int | None = None  # XID 45: "caused by previous Xid N"
    gpu_uuid: str | None = None  # from the driver's "GPU at PCI:...: GPU-..." line
    gpu_serial: str | None = None  # from "GPU Board Serial Number: ..."

    @property
    def sxid(self) -> int | None:
        """The SXid number, for an NVSwitch event."""
        return self.xid if self.kind == "sxid" else None


class CheckResult(_Record):
    """One check's verdict on one subject (a GPU, the node)."""

    check: str = Field(min_length=1, max_length=64)
    status: Status
    action: Action = Action.NONE
    category: Category | None = None
    summary: str = Field(default="", max_length=500)
    gpu: GpuIdentity | None = None
    xid: Count | None = None
    evidence: Evidence = Field(default_factory=dict)
    observed_at: AgentTime

    @property
    def is_fault(self) -> bool:
        return self.status is Status.FAIL and self.action.drains


class JobObservation(_Record):
    """A Slurm job as the agent sees it on its node, from the job's own processes.

    The agent finds a job's processes by their ``SLURM_JOB_ID`` and ``SLURMD_NODENAME``
    environment, so it needs no Slurm call to see what runs here. ``progress_at`` is the
    newest sign of progress: the job helper's heartbeat, the job's progress file, or
    growth of its output file (``progress_source`` says which). The checkpoint fields
    are set on the job's first node only (``SLURM_NODEID`` 0), where the agent looks
    for the newest complete checkpoint under ``ckpt_dir`` now and then.
    """

    job_id: Annotated[int, Field(ge=1, le=INT32_MAX)]
    restart_count: Count = 0  # SLURM_RESTART_COUNT of its processes
    lead: bool = False  # the job's first node (SLURM_NODEID 0): batch script or rank 0 here
    processes: Count = 0
    ckpt_dir: str | None = None  # HPRESIL_CKPT_DIR
    gpus: tuple[Count, ...] = ()  # GPU indexes on this node allocated to the job
    gpu_util_pct: float | None = None  # mean SM utilisation of those GPUs this tick
    progress_at: FileTime | None = None
    progress_source: Literal["heartbeat", "progress_file", "output"] | None = None
    step: SignedInt | None = None  # the step the job helper last reported
    checkpoint: str | None = None  # newest complete checkpoint (path)
    checkpoint_step: SignedInt | None = None
    checkpoint_at: FileTime | None = None  # when that checkpoint was committed
    # what this incarnation resumed from (HPRESIL_RESUME_FROM, from the TaskProlog)
    resumed_from: str | None = None
    resumed_from_step: SignedInt | None = None
    resumed_from_at: FileTime | None = None  # when that checkpoint was committed


class Report(_Record):
    """What an agent sends: its state when it changed, else a heartbeat.

    ``report_id`` is unique per report and makes delivery idempotent: the agent
    retries until acknowledged and the controller ignores an id it has seen (and a
    ``seq`` it has taken already).

    ``digest`` names the agent's state as of this report (its results and GPUs: a
    SHA-256, :func:`state_digest`). A state report (``heartbeat`` false) carries every
    current result; a ``heartbeat`` carries only the state's faults (none on a healthy
    node), to be judged again, and the digest: when it is not the one the controller
    holds, the acknowledgement asks for the state (``send_state``). Without a digest
    (older agents, the CLI's burn-in) a report is a state report of what it carries.
    """

    report_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    node: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    seq: Count
    sent_at: AgentTime
    agent_version: str = ""
    gpus: tuple[GpuIdentity, ...] = ()
    results: tuple[CheckResult, ...] = ()
    jobs: tuple[JobObservation, ...] = ()  # Slurm jobs running here (absent: not observed)
    digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    heartbeat: bool = False  # results are the state's faults only; the state is ``digest``'s
    # the results answer the controller's command of this id (a recovery step the
    # agent ran: a GPU reset, a burn-in)
    command: Count | None = Field(None, exclude_if=lambda v: v is None)  # absent: none

    @model_validator(mode="after")
    def _heartbeat_has_digest(self) -> Report:
        if self.heartbeat and self.digest is None:
            raise ValueError("digest: a heartbeat names the state it stands for")
        return self


def state_digest(results: Iterable[CheckResult], gpus: Iterable[GpuIdentity]) -> str:
    """The SHA-256 naming an agent's state: what each result says (not when), and the
    GPUs. Equal states have equal digests, whatever the order."""
    lines = sorted(
        json.dumps(r.model_dump(mode="json", exclude={"observed_at", "evidence"}), sort_keys=True)
        for r in results
    )
    lines += sorted(g.model_dump_json() for g in gpus)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
