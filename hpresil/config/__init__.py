"""Configuration: one TOML file validated against one typed schema.

The sections live here; the settings of each area's checks and sources in the
submodules (:mod:`.checks`, :mod:`.host`, :mod:`.xid`, :mod:`.dcgm`, :mod:`.burnin`).

Lookup order: ``--config PATH``, then ``$HPRESIL_CONFIG``, then
``/etc/hpresil/hpresil.toml``. Drop-ins in ``<file>.d/*.toml`` (sorted) are merged
on top, table by table. An unknown key or a bad value is a :class:`ConfigError`
whose one-line message names the file and the key path (``agent.gpu.backend``).

Paths may contain ``{node}``, replaced by the agent's node name, so one file can
serve every node of a cluster (the lab relies on that).

As sshd's StrictModes: a file, drop-in or folder that another user could change
(group- or world-writable, or owned by someone other than root or the user reading
it) is refused, since the daemons run what it names (``slurm.bin_dir``) as root.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hpresil.config.burnin import BurninConfig
from hpresil.config.checks import (
    ClockEventsConfig,
    EccConfig,
    NvlinkConfig,
    PcieConfig,
    PowerConfig,
    RetiredPagesConfig,
    RowRemapConfig,
    TemperatureConfig,
)
from hpresil.config.dcgm import DcgmConfig
from hpresil.config.host import (
    HeadroomConfig,
    IbConfig,
    MountsConfig,
    ProcessesConfig,
    ServicesConfig,
)
from hpresil.config.limits import LimitsConfig
from hpresil.config.recovery import RecoveryConfig
from hpresil.config.topology import TopologyConfig
from hpresil.config.xid import XidPolicyConfig
from hpresil.errors import ConfigError

DEFAULT_PATH = Path("/etc/hpresil/hpresil.toml")
ENV_VAR = "HPRESIL_CONFIG"
REASON_MAX = 100  # drain reasons hpresil sets are clipped to this many characters


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ControllerConfig(_Section):
    # Where agents, the CLI and the Slurm hook reach the controller: one URL, or a list
    # of the replicas' (each request goes to the one that answered last, and on to the
    # next at once when that one is unreachable or answers 502/503/504). See ``urls``.
    url: str | tuple[str, ...] = "http://127.0.0.1:8787"
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8787, ge=1, le=65535)
    database: str = "sqlite:////var/lib/hpresil/hpresil.db"
    token_file: Path = Path("/etc/hpresil/token")
    request_timeout_s: float = Field(default=5.0, gt=0)
    # How long the controller keeps an idle connection open for the client's next
    # request (HTTP keep-alive). Longer than the agents' heartbeat, so each agent keeps
    # its one connection: a new connection per report costs the controller more than
    # the report (scripts/bench/ingest). Each kept connection is a file descriptor: the
    # controller raises its own soft limit to the hard one (LimitNOFILE in its unit).
    keepalive_s: int = Field(default=75, ge=1)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    # The most of a CPU reconcile passes may take: after a pass that took T CPU-seconds
    # the next waits at least T x (1/share - 1) (waiting for Slurm does not count). A
    # pass over 20,000 nodes reads Slurm's whole listing (26 MB from sinfo --json in
    # 22.05), so such a fleet is read about every 10 s, and slurmctld asked less often
    reconcile_max_share: float = Field(default=0.1, gt=0, le=1)
    # Replicas on one PostgreSQL: the one holding the leader lock runs the executor and
    # the reconciler. Each checks its lock (a follower tries for it) this often: another
    # takes over about this long after the leader is killed (hpresil.controller.leader)
    leader_check_s: float = Field(default=2.0, gt=0)
    stale_after_s: float = Field(default=60.0, gt=0)  # no report for this long: node stale
    report_retention_days: int = Field(default=30, ge=1)
    # how far ahead of the controller's clock an agent's sent_at/observed_at may be
    max_clock_skew_s: float = Field(default=300.0, ge=0)
    warn_clock_skew_s: float = Field(default=30.0, ge=0)  # ahead by more: a warning
    # People prove their uid with MUNGE (the CLI runs `munge`, the controller `unmunge`,
    # each through this host's munged): anyone may read; operators may also write
    munge_socket: str = "/run/munge/munge.socket.2"
    operators_group: str = "hpresil-operators"  # its members on the controller host; "": none
    operators: tuple[str, ...] = ()  # user names; root is always an operator
    # HTTPS: the controller serves TLS with this certificate and key (PEM); agents, the
    # CLI and the hook verify it against tls_ca ("": the system's trust store). Without
    # them it serves plain HTTP on a loopback address only, unless allow_plain_http.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    allow_plain_http: bool = False  # plain HTTP on another address (a trusted network)

    @field_validator("url", mode="before")
    @classmethod
    def _http_urls(cls, value: object) -> object:
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list | tuple) or not urls:
            raise ValueError("expected a URL or a non-empty list of URLs")
        for url in urls:
            if not isinstance(url, str) or not _is_http_url(url):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return value if isinstance(value, str) else tuple(urls)

    @property
    def urls(self) -> tuple[str, ...]:
        """``url`` as a tuple: the controllers to try, in order."""
        return (self.url,) if isinstance(self.url, str) else self.url


def _is_http_url(url: str) -> bool:
    """``http://`` or ``https://``, a host, and a port only if a number (1-65535)."""
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # .port: not a number, or out of range
        return False


class KernelLogConfig(_Section):
    source: Literal["kmsg", "journal", "file"] = "kmsg"
    path: str = "/dev/kmsg"  # for source=file: the file to follow ({node} expands)
    poll_s: float = Field(default=0.2, gt=0)  # file source: how often to look for new lines
    # where reading stopped, resumed on start ({node} expands); None: in the spool directory
    cursor_file: str | None = None
    # a cursor older than this (the agent was down longer) is not resumed: start at the end
    resume_max_s: float = Field(default=86400.0, gt=0)


class GpuConfig(_Section):
    backend: Literal["nvml", "nvidia_smi"] = "nvml"
    expected_count: int | None = Field(default=None, ge=0)  # None: whatever is found at start
    # the recovery ladder's GPU reset: `nvidia-smi -r -i GPU`, run by the agent
    smi_binary: str = Field(default="nvidia-smi", min_length=1)
    reset_timeout_s: float = Field(default=120.0, gt=0)


class AgentConfig(_Section):
    node: str | None = None  # default: the short host name
    spool_dir: str = "/var/lib/hpresil/spool/{node}"
    key_file: str = "/etc/hpresil/node.key"  # this node's key, 0600 ({node} expands)
    heartbeat_s: float = Field(default=10.0, gt=0)
    poll_s: float = Field(default=5.0, gt=0)  # GPU polling interval
    flush_s: float = Field(default=2.0, gt=0)  # spool delivery retry interval
    cache_file: str = "/run/hpresil/{node}.verdict.json"  # latest verdict, for Slurm hooks
    kernel_log: KernelLogConfig = KernelLogConfig()
    gpu: GpuConfig = GpuConfig()


class SlurmConfig(_Section):
    bin_dir: Path | None = None  # where sinfo/squeue/scontrol live; default: $PATH
    conf: Path | None = None  # exported as SLURM_CONF for every call
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0)


class PolicyConfig(_Section):
    # "shadow": decide and record every drain as held back ("would drain"), do nothing
    # in Slurm: how a site turns hpresil on safely
    mode: Literal["enforce", "shadow"] = "enforce"
    limits: LimitsConfig = LimitsConfig()  # [policy.limits]: the drain cap and the breaker
    requeue_jobs: bool = True  # requeue jobs on nodes drained with drain_now or worse
    expedite_requeue: bool = True  # set StartTime=now on a requeued job (skips cred_expire wait)
    reason_prefix: str = Field(default="hpresil:", min_length=1)
    # A fault that recurs on the same GPU (serial, else UUID, else node and index)
    # within the window climbs NVIDIA's ladder: reset GPU -> reboot -> replace.
    escalate_on_recurrence: bool = True
    recurrence_window_days: float = Field(default=30.0, gt=0)
    # The lemon rule: the replace_after-th hardware incident (any category) within the
    # window on one GPU (as above) or on one node, the one opening counted, is answered
    # with replace (0: off). A shared component's incidents and a job's do not count.
    replace_after: int = Field(default=3, ge=0)


class IdleJobsConfig(_Section):
    """Allocated GPUs that stay unused: ``hpresil jobs --idle`` and an optional action."""

    below_pct: float = Field(default=5.0, ge=0, le=100)  # every allocated GPU under this
    window_s: float = Field(default=1800.0, gt=0)  # ... for this long: the job is idle
    action: Literal["none", "notify", "cancel"] = "none"


class JobsConfig(_Section):
    """Job resilience: checkpoint-aware requeue, budgets, blame, fencing, hangs, idle GPUs.

    Per-job overrides come from the job's comment: ``hpresil:ckpt=DIR,budget=N,hang=S``."""

    restart_budget: int = Field(default=5, ge=0)  # requeues allowed; past it: held + notified
    exclude_failed_nodes: bool = True  # add the failed node (and suspects) to ExcNodeList
    suspect_window_h: float = Field(default=24.0, ge=0)  # a node with an incident this recent
    blame_nodes: int = Field(default=3, ge=2)  # same failure on this many nodes: the job's fault
    blame_window_days: float = Field(default=7.0, gt=0)
    hold_on_app_xid: bool = True  # a protected job raising only application XIDs is held
    # a protected job without progress for this long is hung (0: never)
    hang_after_s: float = Field(default=1800.0, ge=0)
    hang_signal: str = Field(default="USR1", pattern=r"^(SIG)?[A-Z0-9+]+$")
    hang_grace_s: float = Field(default=120.0, ge=0)  # after the signal, before the requeue
    webhook_url: str = ""  # POSTed a JSON event when a job is held, hung or idle
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    kill_orphans: bool = True  # agent: kill a job's processes Slurm no longer runs here
    orphan_grace_s: float = Field(default=30.0, ge=0)  # seen orphaned this long before kill
    observe_s: float = Field(default=15.0, gt=0)  # agent: Slurm and checkpoint look-ups
    idle: IdleJobsConfig = IdleJobsConfig()


class HooksConfig(_Section):
    """Live probes of the Slurm hooks' quick tier (slurm-plugins/hpresil-hook)."""

    gpu_devices: str = "/dev/nvidia[0-9]*"  # device files counted against expected_count
    mounts: tuple[str, ...] = ()  # must answer stat() within mount_timeout_s
    mount_timeout_s: float = Field(default=1.0, gt=0)
    munge_socket: str = "/run/munge/munge.socket.2"  # "" to skip
    fresh_s: float = Field(default=120.0, gt=0)  # an older agent verdict is not trusted


class ChecksConfig(_Section):
    """Per-check settings (``[checks.<area>]``) and the checks a site turns off."""

    disabled: tuple[str, ...] = ()  # check names not to run, e.g. ["processes"]
    ecc: EccConfig = EccConfig()
    row_remap: RowRemapConfig = RowRemapConfig()
    retired_pages: RetiredPagesConfig = RetiredPagesConfig()
    temperature: TemperatureConfig = TemperatureConfig()
    clock_events: ClockEventsConfig = ClockEventsConfig()
    power: PowerConfig = PowerConfig()
    pcie: PcieConfig = PcieConfig()
    nvlink: NvlinkConfig = NvlinkConfig()
    ib: IbConfig = IbConfig()
    mounts: MountsConfig = MountsConfig()
    headroom: HeadroomConfig = HeadroomConfig()
    processes: ProcessesConfig = ProcessesConfig()
    services: ServicesConfig = ServicesConfig()


class Config(_Section):
    cluster: str = "default"
    controller: ControllerConfig = ControllerConfig()
    agent: AgentConfig = AgentConfig()
    slurm: SlurmConfig = SlurmConfig()
    policy: PolicyConfig = PolicyConfig()
    recovery: RecoveryConfig = RecoveryConfig()  # back to service: the ladder's rungs
    jobs: JobsConfig = JobsConfig()
    hooks: HooksConfig = HooksConfig()
    checks: ChecksConfig = ChecksConfig()
    xid: XidPolicyConfig = XidPolicyConfig()  # [xid.overrides.<N>] site overrides
    dcgm: DcgmConfig = DcgmConfig()
    burnin: BurninConfig = BurninConfig()
    topology: TopologyConfig = TopologyConfig()  # switches, racks, power domains
    source: Path | None = None  # the file this was read from (set by load)

    def node_name(self, override: str | None = None) -> str:
        return override or self.agent.node or socket.gethostname().split(".")[0]


def expand(template: str, node: str) -> Path:
    """A configured path with ``{node}`` replaced."""
    return Path(template.replace("{node}", node))


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def load(explicit: str | os.PathLike[str] | None = None, *, required: bool = False) -> Config:
    """Read and validate the configuration. A missing default file gives the defaults
    unless ``required``; a missing explicit file is always an error."""
    path = resolve_path(explicit)
    named = bool(explicit) or ENV_VAR in os.environ
    if not path.exists():
        if named or required:
            raise ConfigError(f"config {path}: file not found")
        return Config()
    _check_folder(path.parent)
    data = _read_toml(path)
    dropins = path.with_name(path.name + ".d")
    if dropins.is_dir():
        _check_folder(dropins)
        for extra in sorted(dropins.glob("*.toml")):
            data = _merge(data, _read_toml(extra))
    return parse(data, source=path)


def parse(data: dict[str, Any], *, source: Path | None = None) -> Config:
    where = f"config {source}" if source else "config"
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{where}: {key}: {msg}{more}") from None


def refuse_unsafe(what: str, path: Path, st: os.stat_result) -> None:
    """Raise :class:`ConfigError` when a user other than root or the one running
    could change the file or folder ``path`` (``st``: its stat): group- or
    world-writable (a folder with the sticky bit excepted), or owned by someone else.
    The one-line message names the owner, the mode and the command that fixes it."""
    mode = stat.S_IMODE(st.st_mode)
    me = _user_name(os.geteuid())
    found = f"{what} {path}: owner {_user_name(st.st_uid)}, mode {mode:04o}"
    if not _trusted_owner(st.st_uid):
        who = "root or a system account" if os.geteuid() == 0 else f"root or {me}"
        raise ConfigError(f"{found}: not owned by {who}; run `chown {me} {path}`")
    sticky_folder = stat.S_ISDIR(st.st_mode) and mode & stat.S_ISVTX
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_folder:
        raise ConfigError(f"{found}: others can change it; run `chmod go-w {path}`")


SYS_UID_MAX = 999  # Debian's login.defs: system accounts (the controller's ``hpresil``)


def _trusted_owner(uid: int) -> bool:
    """Root, the user running, and for root also a system account: root on the
    controller host reads the token of the ``hpresil`` service user. ``nobody``
    (65534) and people's accounts are not system accounts."""
    me = os.geteuid()
    return uid in (0, me) or (me == 0 and 0 < uid <= SYS_UID_MAX)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _check_folder(folder: Path) -> None:
    """A folder others can write lets them swap the files in it."""
    try:
        st = folder.stat()
    except OSError as exc:
        raise ConfigError(f"config folder {folder}: {exc.strerror}") from None
    refuse_unsafe("config folder", folder, st)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            refuse_unsafe("config", path, os.fstat(fh.fileno()))
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror}") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
