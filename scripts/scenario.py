"""The demo's story as reusable steps: a checkpointing job, a GPU fault, and the
measurements of what hpresil did about it. Used by scripts/demo, the loop-latency
benchmark and the integration tests. Stdlib only (talks to Slurm and hpresil through
their command lines, as a user would).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab import REPO, VENV, Lab

TRAIN = REPO / "scripts" / "lab-jobs" / "train.py"
_LINE = re.compile(r"^(?P<t>\d+\.\d+) (?P<what>\w+)(?: (?P<rest>.*))?$")


class ScenarioError(RuntimeError):
    pass


@dataclass
class TrainingJob:
    job_id: int
    out: Path
    ckpt_dir: Path

    def events(self) -> list[tuple[float, str, str]]:
        """(epoch, kind, rest) for each line the job printed so far."""
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            m = _LINE.match(line.strip())
            if m:
                found.append((float(m["t"]), m["what"], m["rest"] or ""))
        return found

    def last_step(self, before: float | None = None) -> int:
        steps = [
            int(rest)
            for t, kind, rest in self.events()
            if kind == "step" and (before is None or t <= before)
        ]
        return max(steps, default=0)

    def starts(self) -> list[tuple[float, dict[str, str]]]:
        return [
            (t, dict(kv.split("=", 1) for kv in rest.split()))
            for t, kind, rest in self.events()
            if kind == "start"
        ]


@dataclass
class FaultResult:
    """Seconds from the injection to each step; requeue/resume are None for faults
    whose policy lets the running job finish (plain ``drain``)."""

    detect_s: float
    drain_s: float
    requeue_s: float | None
    resume_s: float | None
    resumed_from_step: int | None
    steps_lost: int | None
    drained_node: str
    resumed_node: str | None
    incident: int
    drain_reason: str
    injected_at: float = 0.0  # the injection, wall-clock (time.time())

    def summary(self) -> dict[str, object]:
        d = asdict(self)
        for private in ("incident", "drain_reason", "injected_at"):
            d.pop(private)
        return d


LADDER = ("reset_gpu", "reboot", "replace")  # the incident actions the ladder takes


@dataclass
class Recovery:
    """What the recovery ladder did with one incident, in seconds after the injection:
    each step's start and end as hpresil's ledger has them, and when Slurm showed the
    node serving jobs again (IDLE, no reason), if it did."""

    incident: int
    steps: list[dict[str, Any]]  # rung, status, start_s, end_s, outcome
    ended: str  # "back in service", "replace", or the last step's rung and status
    back_in_service_s: float | None

    def rung_s(self, rung: str) -> float | None:
        """When the first ``rung`` step that passed ended."""
        return next(
            (s["end_s"] for s in self.steps if s["rung"] == rung and s["status"] == "passed"), None
        )


def follow_recovery(
    lab: Lab,
    node: str,
    incident: int,
    t0: float,
    *,
    timeout: float = 300,
    say: Callable[[str], None] = lambda _: None,
) -> Recovery:
    """Follow ``incident``'s recovery ladder until the node serves jobs again or the
    ladder ends elsewhere (replace, a step stopped), saying each step as it ends."""
    told: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail: Any = api_get(lab, f"/v1/incidents/{incident}")
        steps = [_step(s, t0) for s in detail["recovery"]]
        for i, step in enumerate(steps):
            if step["end_s"] is not None and i not in told:
                told.add(i)
                say(f"+{step['end_s']:6.2f}s {step['rung']} {step['status']}: {step['outcome']}")
        last = steps[-1] if steps else None
        if last is None and detail["action"] not in LADDER:
            return Recovery(incident, steps, f"left to an operator ({detail['action']})", None)
        if detail["status"] == "resolved" and in_service(lab, node):
            back = round(time.time() - t0, 3)
            say(f"+{back:6.2f}s {node} IDLE in Slurm: back in service")
            return Recovery(incident, steps, "back in service", back)
        if last is not None and last["end_s"] is not None and last["rung"] == "replace":
            return Recovery(incident, steps, "replace", None)
        if last is not None and last["status"] == "stopped":
            return Recovery(incident, steps, f"{last['rung']} stopped", None)
        time.sleep(0.1)
    raise ScenarioError(f"incident #{incident}: the ladder did not end in {timeout:g} s")


def in_service(lab: Lab, node: str) -> bool:
    """Slurm may start jobs on ``node``: IDLE, no reason (a NOT_RESPONDING flag, left by
    a ping that went unanswered under load, clears at the next one)."""
    return node_state(lab, node) == ("IDLE", "")


def _step(step: dict[str, Any], t0: float) -> dict[str, Any]:
    end = step["ended_at"]
    return {
        "rung": step["rung"],
        "status": step["status"],
        "start_s": round(_epoch(step["started_at"]) - t0, 3),
        "end_s": None if end is None else round(_epoch(end) - t0, 3),
        "outcome": step["outcome"],
    }


# A benchmark interrupts one job on purpose, node after node: its restart budget
# (this comment key) and blame (the same failure on N nodes is the job's fault, and
# holds it) are set out of the way by these two.
BENCH_BUDGET = "budget=1000"


def dropin_path(lab: Lab, name: str) -> Path:
    """A configuration drop-in of the lab's (``<hpresil.toml>.d/NAME``; the folder made)."""
    folder = lab.hpresil_conf.with_name(lab.hpresil_conf.name + ".d")
    folder.mkdir(parents=True, exist_ok=True)  # a fresh lab has no etc/ yet
    return folder / name


@contextmanager
def controller_with(lab: Lab, name: str, toml: str) -> Iterator[None]:
    """The controller restarted with the drop-in ``name`` (``toml``), as a site would
    configure it; restarted without it afterwards."""
    conf = dropin_path(lab, name)
    conf.write_text(toml)
    lab.stop_process("controller")
    lab.start_controller()
    try:
        yield
    finally:
        conf.unlink(missing_ok=True)
        lab.stop_process("controller")
        lab.start_controller()


def allow_repeated_faults(lab: Lab) -> None:
    """A configuration drop-in that keeps blame from holding a job faulted on purpose
    (write it before the controller starts; ``lab.reset_state`` removes it)."""
    dropin_path(lab, "50-bench-no-blame.toml").write_text("[jobs]\nblame_nodes = 1000\n")


def submit_training(
    lab: Lab,
    name: str = "train-demo",
    step_s: float = 0.25,
    *,
    fmt: str = "hf",
    every: int = 5,
    extra: tuple[str, ...] = (),
    comment: str = "",
) -> TrainingJob:
    """A requeueable checkpointing job, protected by hpresil through its comment
    (``hpresil:ckpt=DIR`` plus ``comment``'s keys): the TaskProlog tells each new
    incarnation where to resume."""
    jobs = lab.root / "jobs"
    ckpt = jobs / f"{name}-{time.time_ns()}"
    out = ckpt.with_suffix(".out")
    python = VENV / "bin" / "python"
    keys = ",".join([f"ckpt={ckpt}", *([comment] if comment else [])])
    argv = [
        "sbatch",
        "--parsable",
        "--requeue",
        "--open-mode=append",
        f"--job-name={name}",
        f"--comment=hpresil:{keys}",
        "-N1",
        "--gpus-per-node=8",
        f"--output={out}",
        f"--wrap=exec {python} -u {TRAIN} --format {fmt} --every {every} --steps 100000 "
        f"--step-s {step_s} {' '.join(extra)}",
    ]
    job_id = int(lab.slurm(argv).stdout.strip().split(";")[0])
    return TrainingJob(job_id, out, ckpt)


def job_field(lab: Lab, job_id: int, field: str) -> str:
    out = lab.slurm(["scontrol", "-o", "show", "job", str(job_id)]).stdout
    m = re.search(rf"\b{field}=(\S*)", out)
    return m.group(1) if m else ""


def node_state(lab: Lab, node: str) -> tuple[str, str]:
    out = lab.slurm(["scontrol", "-o", "show", "node", node]).stdout
    state = re.search(r"\bState=(\S+)", out)
    reason = re.search(r"\bReason=(.*?)(?: \[[^\]]*\])?\s*$", out)
    return (state.group(1) if state else "", reason.group(1) if reason else "")


def hpresil_json(lab: Lab, *args: str) -> object:
    out = subprocess.run(
        [*lab.hpresil_argv(), *args, "--json"],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return json.loads(out)


def api_get(lab: Lab, path: str) -> object:
    """GET from the controller's API directly (no CLI start-up in a timing loop)."""
    token = (lab.root / "etc" / "token").read_text().strip()
    req = urllib.request.Request(
        f"http://127.0.0.1:{lab.controller_port}{path}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def incidents_after(lab: Lab, node: str, after: int) -> list[dict[str, object]]:
    """``node``'s incidents (any status) with an id above ``after``."""
    found = api_get(lab, f"/v1/incidents?node={node}")
    assert isinstance(found, list)
    return [i for i in found if i["id"] > after]


def newest_incident_id(lab: Lab) -> int:
    """The highest incident id so far (0: none), to count what a test opens."""
    found = api_get(lab, "/v1/incidents")
    assert isinstance(found, list)
    return max((int(i["id"]) for i in found), default=0)


def hpresil(lab: Lab, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        [*lab.hpresil_argv(), *args],
        env=env or lab.env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def wait_for(what: str, probe: Callable[[], object], timeout: float, every: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise ScenarioError(f"timed out after {timeout:g} s waiting for {what}")


def wait_agents(lab: Lab, timeout: float = 60) -> None:
    def all_ok() -> bool:
        nodes = hpresil_json(lab, "status")
        assert isinstance(nodes, list)
        ok = {n["name"] for n in nodes if n["health"] == "ok"}
        return set(lab.node_names) <= ok

    wait_for("every agent to report healthy", all_ok, timeout, every=0.5)


def wait_running(lab: Lab, job: TrainingJob, min_step: int, timeout: float = 60) -> str:
    def ready() -> str:
        if job_field(lab, job.job_id, "JobState") != "RUNNING":
            return ""
        if job.last_step() < min_step:
            return ""
        return job_field(lab, job.job_id, "BatchHost")

    return str(wait_for(f"job {job.job_id} to run past step {min_step}", ready, timeout, 0.2))


FAULTS = ("xid79", "ecc", "row-remap", "ib")
REQUEUES = {"xid79": True, "ecc": True, "row-remap": True, "ib": False}  # per the policy


# GPU state faults, as the NVML double's fields (scripts/gpu_double.py)
GPU_FAULTS: dict[str, dict[str, object]] = {
    "ecc": {"ecc_volatile_uncorrected_dram": 2, "ecc_aggregate_uncorrected_dram": 2},
    "row-remap": {"row_remap_failure": True},
}


def inject(lab: Lab, node: str, fault: str, gpu: int) -> tuple[float, str]:
    """Inject ``fault`` on ``node``; answer when it happened (the mtime of what the
    injection wrote: the kernel-log file, the NVML double's state file, the port's
    sysfs state file) and what was injected."""
    if fault == "xid79":  # hpresil's own game-day command, run as on the node
        argv = ["inject", "xid", "79", "--gpu", str(gpu), "--node", node]
        line = hpresil(lab, *argv, env=lab.node_env(node)).strip()
        return lab.kmsg_file(node).stat().st_mtime, line
    if fault in GPU_FAULTS:
        changes = GPU_FAULTS[fault]
        state = lab.inject_gpu(node, gpu, **changes)
        said = ", ".join(f"{k}={v}" for k, v in changes.items())
        return state.stat().st_mtime, f"gpu {gpu}: {said}"
    if fault == "ib":
        state = lab.inject_ib(node, "mlx5_3/1", up=False)
        return state.stat().st_mtime, f"{node} mlx5_3/1 down"
    raise ScenarioError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


def inject_and_measure(
    lab: Lab,
    job: TrainingJob,
    *,
    fault: str = "xid79",
    gpu: int = 3,
    timeout: float = 90,
    say: Callable[[str], None] = lambda _: None,
) -> FaultResult:
    """Inject ``fault`` on the job's node and time each step of hpresil's answer."""
    node = job_field(lab, job.job_id, "BatchHost")
    restarts_before = int(job_field(lab, job.job_id, "Restarts") or 0)
    starts_before = len(job.starts())
    t0, what = inject(lab, node, fault, gpu)
    say(f"+{0:6.2f}s injected on {node}: {what}")
    if not REQUEUES[fault]:
        return _drain_only(lab, job, node, t0, timeout, say)
    marks: dict[str, float] = {}
    incident: dict[str, object] = {}
    drain_reason = ""
    deadline = time.monotonic() + timeout
    # Each mark is stamped when the probe that saw it returns: an upper bound.
    while len(marks) < 4:
        if time.monotonic() > deadline:
            raise ScenarioError(f"after {timeout:g} s only saw {sorted(marks)}")
        if "detect" not in marks:
            found = api_get(lab, f"/v1/incidents?status=open&node={node}")
            assert isinstance(found, list)
            fresh = [i for i in found if _epoch(i["detected_at"]) >= t0 - 1]
            if fresh:
                incident = fresh[0]
                marks["detect"] = _epoch(str(incident["detected_at"]))
                say(
                    f"+{marks['detect'] - t0:6.2f}s detected: incident #{incident['id']} "
                    f"{incident['category']} xid {incident['xid']} gpu {gpu}"
                )
        if "drain" not in marks:
            state, reason = node_state(lab, node)
            if "DRAIN" in state:
                marks["drain"], drain_reason = time.time(), reason
                say(f"+{marks['drain'] - t0:6.2f}s {node} {state} in Slurm, reason {reason!r}")
        restarts = int(job_field(lab, job.job_id, "Restarts") or 0)
        if "requeue" not in marks and restarts > restarts_before:
            marks["requeue"] = time.time()
            say(f"+{marks['requeue'] - t0:6.2f}s job {job.job_id} requeued")
        starts = job.starts()
        if "resume" not in marks and len(starts) > starts_before:
            t, info = starts[-1]
            marks["resume"] = t
            say(
                f"+{t - t0:6.2f}s job {job.job_id} running again on {info.get('node')}, "
                f"resumed from step {info.get('resumed_from')}"
            )
        time.sleep(0.02)
    t_resume, info = job.starts()[-1]
    resumed_from = int(info["resumed_from"])
    return FaultResult(
        detect_s=round(marks["detect"] - t0, 3),
        drain_s=round(marks["drain"] - t0, 3),
        requeue_s=round(marks["requeue"] - t0, 3),
        resume_s=round(t_resume - t0, 3),
        resumed_from_step=resumed_from,
        steps_lost=max(0, job.last_step(before=t_resume) - resumed_from),
        drained_node=node,
        resumed_node=info.get("node", "?"),
        incident=int(str(incident["id"])),
        drain_reason=drain_reason,
        injected_at=t0,
    )


def return_to_service(lab: Lab, node: str) -> None:
    """After a round: ``hpresil resume`` the drained node, clear its GPU faults, and
    wait until Slurm has it out of DRAIN."""
    hpresil(lab, "resume", node)
    lab.heal(node)
    wait_for(
        "the node back in service",
        lambda: "drain" not in lab.slurm(["sinfo", "-h", "-n", node, "-o", "%T"]).stdout,
        15,
    )


def _drain_only(
    lab: Lab,
    job: TrainingJob,
    node: str,
    t0: float,
    timeout: float,
    say: Callable[[str], None],
) -> FaultResult:
    """A fault whose policy drains but lets the running job finish."""

    def opened() -> object:
        found = api_get(lab, f"/v1/incidents?status=open&node={node}")
        assert isinstance(found, list)
        return next((i for i in found if _epoch(i["detected_at"]) >= t0 - 1), None)

    incident = wait_for("the incident", opened, timeout, 0.02)
    assert isinstance(incident, dict)
    detect = _epoch(str(incident["detected_at"]))
    say(f"+{detect - t0:6.2f}s detected: {_describe(incident)}")
    wait_for("the drain", lambda: "DRAIN" in node_state(lab, node)[0], timeout, 0.02)
    drained = time.time()
    state, reason = node_state(lab, node)
    say(f"+{drained - t0:6.2f}s {node} {state} in Slurm, reason {reason!r}")
    time.sleep(3)
    still = job_field(lab, job.job_id, "JobState"), job_field(lab, job.job_id, "BatchHost")
    say(
        f"+{time.time() - t0:6.2f}s job {job.job_id} still {still[0]} on {still[1]}: "
        f"policy {incident['action']} lets it finish, nothing requeued"
    )
    return FaultResult(
        detect_s=round(detect - t0, 3),
        drain_s=round(drained - t0, 3),
        requeue_s=None,
        resume_s=None,
        resumed_from_step=None,
        steps_lost=None,
        drained_node=node,
        resumed_node=None,
        incident=int(str(incident["id"])),
        drain_reason=reason,
        injected_at=t0,
    )


def _describe(incident: dict[str, object]) -> str:
    gpu = incident.get("gpu")
    where = f" gpu {gpu['index']}" if isinstance(gpu, dict) else ""
    xid = f" xid {incident['xid']}" if incident.get("xid") is not None else ""
    return (
        f"incident #{incident['id']} {incident['category']}{xid}{where}, "
        f"action {incident['action']}"
    )


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
