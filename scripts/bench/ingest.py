#!/usr/bin/env python3
"""How many agent reports the controller takes in a second: a fleet against a real
``hpresil controller`` over HTTP, the working tree and a baseline side by side.

Each side's controller is started as systemd/hpresil-controller.service starts it
(``hpresil controller`` and its configuration file), as a process of its own, on a
fresh SQLite ledger in a temporary folder and a free localhost port; ``slurm.bin_dir``
names stand-ins for sinfo, squeue, scontrol and scancel that list the fleet in Slurm
22.05's JSON, one leaf switch per rack of 32 (scripts/bench/fleet.py). The baseline
runs a ``git worktree`` of ``--baseline`` (default: the commit before issue 12's work)
with the same .venv and PYTHONPATH pointing at the worktree.

The fleet (this process, scripts/bench/fleet.py): ``--nodes`` agents sending what
hpresil's agent sends, recorded from it on this machine (8 H100 through pynvml and the
NVML double, 8 InfiniBand ports: about 46 KB, over 100 results), each request signed
with its node's key and sent as that side's agent connects (``--connections agents``:
a fresh connection each before hpresil/connections.py, a kept one since, while the rest
of the fleet's connections are held open and idle, ``--held``).
``--change-rate`` of the heartbeats carry an XID 79; halfway through each phase a
rack's 32 nodes report an InfiniBand port down at once; a report not acknowledged
(5 s, or 408/429/502/503/504) is sent again after 2 s, same id; ``--duplicate-rate`` of
the acknowledged ones are sent once more (an answer lost) and must come back as
duplicates. Latency is each request's, send to answer (a request left unanswered
counts the 5 s the agent waits); due -> ack runs from when a node wanted to send a
report to its acknowledgement, queueing and retries included. Per side, after a
warm-up:

* ``capacity``: closed loop, ``--concurrency`` requests in flight, each slot sending the
  next node's report once answered: the reports per second the controller sustains
  (issue 12's target: 5,000) and its CPU-seconds per 1,000 reports (/proc/PID/stat:
  steadier than throughput on a shared machine; 1,000 over it is what one core of
  this machine would take in a second);
* ``fleet``: paced, each node every ``--heartbeat`` s (20,000 nodes: 2,000 reports/s
  offered), the same bound on what is in flight: acknowledgement latency at the
  fleet's own rate (target p99 100 ms) and whether the controller kept up.

Then each side's database is read: every acknowledged report stored exactly once
(``reports``, by ``report_id``), none answered as new twice, every resend answered as
a duplicate, and what the faults did (incidents, shared faults, actions).

``http floor``: the same capacity load against an ASGI app that only reads the body
and answers, under the same uvicorn as the controller: what HTTP alone costs here, and
the most this machine's fleet and server could show.

``--ingest-alone``: per side, also the capacity phase against a second controller whose
reconcile pass (every node of Slurm's listing synced into the ledger, every 5 s as
shipped) runs once at start only: what taking reports in costs by itself.

``--profile``: the working tree's controller alone, every thread under cProfile in
thread CPU time, over the capacity phase; prints where the CPU goes (slower: its
throughput is not comparable). Writes scripts/bench/results/ingest.json (not with
--profile).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import marshal
import os
import platform
import resource
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVENTFUL = ("change", "burst")  # kinds whose report carries an event: always stored
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402

RESULTS = HERE / "results" / "ingest.json"
DEFAULT_BASELINE = "1cc86235fb9ec6792ce83c0c58d30d87b4ebee75"  # HEAD when this was written
LAB_PORTS = frozenset({17101, 16917, 18887, 18787})  # the Slurm lab's and the demo's
PYTHON = str(REPO / ".venv" / "bin" / "python")
HPRESIL = str(REPO / ".venv" / "bin" / "hpresil")
TARGET = {"reports_per_s": 5000, "ack_p99_ms": 100}
FLOOR_S = 10.0
ALONE = "capacity, ingest alone"
QUIET_RECONCILE_S = 86_400.0  # the reconcile pass runs at start, then not for a day
# controller.keepalive_s where connections are held idle through a side's phases (the
# shipped 75 s would close them during the fleet phase; nothing else changes)
HELD_KEEPALIVE_S = 600

# An ASGI app that reads the request and answers as the controller does, under uvicorn
# configured as the controller's service configures it.
FLOOR_SERVER = """
import sys, uvicorn
ACK = b'{"accepted":true,"duplicate":false,"incidents":[]}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ACK))]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    await send({"type": "http.response.body", "body": ACK})
uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
                              access_log=False)).run()
"""

# The controller's main thread and every thread it starts, each under its own cProfile
# (cProfile alone sees only the thread that enables it: the routes run in worker threads),
# timed in the thread's CPU time (wall time would count 40 workers waiting for one lock).
# SIGUSR1 writes the figures so far to OUT.start, the end of the run to OUT; the window
# is the difference (snapshot_stats reads a profile without stopping it).
PROFILED = """
import cProfile, marshal, pstats, signal, sys, threading, time
out, argv = sys.argv[1], sys.argv[2:]
profiles = [cProfile.Profile(time.thread_time)]
def boot(*_):
    sys.setprofile(None)
    p = cProfile.Profile(time.thread_time)
    profiles.append(p)
    p.enable()
def merged():
    total = {}
    for p in list(profiles):
        p.snapshot_stats()
        for func, stat in p.stats.items():
            total[func] = pstats.add_func_stats(total[func], stat) if func in total else stat
    return total
def mark(*_):
    with open(out + ".start", "wb") as fh:
        marshal.dump(merged(), fh)
signal.signal(signal.SIGUSR1, mark)
threading.setprofile(boot)
from hpresil.cli.main import main
profiles[0].enable()
try:
    code = main(argv)
finally:
    profiles[0].disable()
    with open(out, "wb") as fh:
        marshal.dump(merged(), fh)
sys.exit(code)
"""

# Where a report's CPU goes, for --profile: (label, file, function) read from the window's
# profile; each row's cumulative time, so nested rows are parts of the row above them.
WHERE = (
    ("body read by CallerGate", "hpresil/controller/callers.py", "_read_body"),
    ("signature (body SHA-256, HMAC)", "hpresil/auth.py", "request_signature"),
    ("request body read and parsed (JSON)", "starlette/requests.py", "json"),
    ("Report validated (pydantic)", "fastapi/dependencies/utils.py", "request_body_to_args"),
    ("  of which the evidence walk", "hpresil/vocab/__init__.py", "_bounded_evidence"),
    ("Ingest.__call__", "hpresil/controller/ingest.py", "__call__"),
    ("  KnownNodes.require", "hpresil/controller/known.py", "require"),
    ("  Incoming.of (model_dump)", "hpresil/controller/ingest.py", "of"),
    ("  report_seen", "hpresil/store/repo.py", "report_seen"),
    ("  ensure_node", "hpresil/store/repo.py", "ensure_node"),
    ("  note_report (merge_results)", "hpresil/controller/ingest.py", "note_report"),
    ("  open_incident (+ the autoflush)", "hpresil/store/repo.py", "open_incident"),
    ("  policy.decide", "hpresil/controller/policy.py", "decide"),
    ("  apply (incidents, limits, shared)", "hpresil/controller/ingest.py", "apply"),
    ("  commit", "sqlalchemy/orm/session.py", "commit"),
    ("JSON encoding (stored body, results)", "json/encoder.py", "iterencode"),
    ("reconcile pass (sinfo, every node)", "hpresil/controller/reconcile.py", "run_once"),
    ("  sync_node", "hpresil/controller/reconcile.py", "sync_node"),
    ("executor: drains (sinfo per drain)", "hpresil/controller/remediation.py", "_run"),
)


def main() -> int:
    args = parse_args()
    mix = fleet.Mix(
        nodes=args.nodes,
        heartbeat_s=args.heartbeat,
        change_rate=args.change_rate,
        duplicate_rate=args.duplicate_rate,
    )
    tree = {  # as the run starts: others may commit meanwhile
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_in_hpresil": [
            line.split(maxsplit=1)[1]
            for line in git("status", "--porcelain", "hpresil").splitlines()
        ],
    }
    with tempfile.TemporaryDirectory(prefix="hpresil-bench-ingest-") as tmp:
        root = Path(tmp)
        shapes = fleet.load_shapes(PYTHON, root / "shapes.json")
        if args.profile:
            return profile(root, shapes, mix, args)
        sides: dict[str, dict[str, Any]] = {}
        with worktree(args.baseline, root / "baseline-tree") as (base_dir, base_sha):
            plan = [("working tree", REPO, shapes)]
            if base_dir is not None:  # its agent's reports: what its controller takes
                base_shapes = fleet.load_shapes(PYTHON, root / "base-shapes.json", base_dir)
                plan.insert(0, ("baseline", base_dir, base_shapes))
            for name, code, spoken in plan:
                print(f"--- {name}: {code}", flush=True)
                home = root / name.replace(" ", "-")
                sides[name] = run_side(code, home, spoken, mix, args)
                sample = new_load("-", "-" * 32, spoken, mix, args, keepalive=False)
                sides[name]["body_bytes"] = sample.body_bytes
        floor = http_floor(root, shapes, mix, args) if args.floor else None
    result = summarize(sides, floor, shapes, mix, args, base_sha, tree)
    show(result)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}")
    stores = [s["store"] for s in sides.values()]
    stores += [s["phases"][ALONE]["store"] for s in sides.values() if ALONE in s["phases"]]
    return 0 if all(store["ok"] for store in stores) else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--nodes", type=int, default=20_000, help="agents (default 20,000)")
    add("--seconds", type=float, default=30.0, help="each phase's length (default 30)")
    add("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    add("--heartbeat", type=float, default=10.0, help="each agent's, in s (default 10)")
    add("--change-rate", type=float, default=0.001, help="reports with an XID 79 (0.001)")
    add("--duplicate-rate", type=float, default=0.01, help="acks resent (default 0.01)")
    add("--warmup", type=float, default=5.0, help="s of load before the phases (default 5)")
    add(
        "--baseline",
        default=DEFAULT_BASELINE,
        help="git revision the working tree is compared with ('none': the working tree "
        f"alone; default {DEFAULT_BASELINE[:12]}, before issue 12's work)",
    )
    add(
        "--connections",
        choices=("agents", "per-report", "kept"),
        default="agents",
        help="each side's fleet: as its agents do (default: kept where its client keeps "
        "them, hpresil/connections.py), a new one per report, or kept",
    )
    add(
        "--held",
        type=int,
        help="idle connections held open while a side that keeps them is measured, the "
        "rest of the fleet's (default: --nodes less --concurrency, as file descriptors allow)",
    )
    add("--client", choices=("raw", "httpx"), default="raw", help="the fleet's HTTP client")
    add("--reconcile-s", type=float, help="controller.reconcile_interval_s (default: 5, shipped)")
    add("--no-floor", dest="floor", action="store_false", help="skip the HTTP floor")
    add("--ingest-alone", action="store_true", help="also capacity without the reconcile pass")
    add("--results", type=Path, default=RESULTS, help=f"where to write (default {RESULTS.name})")
    add("--profile", action="store_true", help="where the working tree's controller's CPU goes")
    args = parser.parse_args()
    if args.nodes < fleet.RACK:
        parser.error(f"--nodes: at least {fleet.RACK} (one rack)")
    return args


# --- the code under test ---
@contextlib.contextmanager
def worktree(rev: str, where: Path) -> Iterator[tuple[Path | None, str | None]]:
    """A detached worktree of ``rev`` at ``where``, removed afterwards."""
    if rev == "none":
        yield None, None
        return
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    git("worktree", "add", "--detach", "--quiet", str(where), sha)
    try:
        yield where, sha
    finally:
        git("worktree", "remove", "--force", str(where))


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.strip()


# --- one controller under the fleet ---
def run_side(
    code: Path, home: Path, shapes: dict[str, Any], mix: fleet.Mix, args: argparse.Namespace
) -> dict[str, Any]:
    kept = keeps_connections(code, args)
    keepalive_s = HELD_KEEPALIVE_S if kept else None
    with controller(code, home, mix.nodes, args.reconcile_s, keepalive_s=keepalive_s) as ctl:
        primed = prime(home / "hpresil.db", shapes)
        load = new_load(ctl.url, ctl.token, shapes, mix, args, kept)
        phases = {}
        before = stored_bytes(home / "hpresil.db")
        with held(ctl, held_count(args, mix) if kept else 0) as holding:
            for name, seconds, paced, burst in (
                ("warm-up", args.warmup, False, False),
                ("capacity", args.seconds, False, True),
                ("fleet", args.seconds, True, True),
            ):
                phases[name] = measured(load, ctl, name, seconds, paced, burst)
                if name != "warm-up":
                    print(one_line(name, phases[name]), flush=True)
        grown = stored_bytes(home / "hpresil.db") - before
    store = check_store(home / "hpresil.db", load.ledger, stores_heartbeats(shapes))
    store["primed_nodes"] = primed
    store["storage"] = storage(grown, phases, mix)
    print(f"storage: {store['storage']}", flush=True)
    if args.ingest_alone:
        phases[ALONE] = ingest_alone(code, home.with_name(f"{home.name}-alone"), shapes, mix, args)
    print(
        f"store: {store['acknowledged']} acknowledged, {store['lost']} lost, "
        f"{store['stored_twice']} stored twice, {store['answered_new_twice']} applied twice, "
        f"{store['resends_answered_duplicate']} of {store['resends_answered']} resends "
        "answered as duplicates",
        flush=True,
    )
    return {"phases": phases, "store": store, "connections": holding}


def ingest_alone(
    code: Path, home: Path, shapes: dict[str, Any], mix: fleet.Mix, args: argparse.Namespace
) -> dict[str, Any]:
    """The capacity phase against a controller that reconciles once, at start."""
    with controller(code, home, mix.nodes, QUIET_RECONCILE_S) as ctl:
        prime(home / "hpresil.db", shapes)
        load = new_load(ctl.url, ctl.token, shapes, mix, args, keeps_connections(code, args))
        measured(load, ctl, "warm-up", args.warmup, False, False)
        found = measured(load, ctl, "capacity", args.seconds, False, True)
    print(one_line("alone", found), flush=True)
    found["store"] = check_store(home / "hpresil.db", load.ledger, stores_heartbeats(shapes))
    return found


def new_load(
    url: str,
    token: str,
    shapes: dict[str, Any],
    mix: fleet.Mix,
    args: argparse.Namespace,
    keepalive: bool,
) -> fleet.Load:
    return fleet.Load(
        url,
        token,
        shapes,
        mix,
        concurrency=args.concurrency,
        keepalive=keepalive,
        client=args.client,
    )


def keeps_connections(code: Path, args: argparse.Namespace) -> bool:
    """Whether the fleet keeps its connections against ``code``'s controller: as that
    code's agents do (its client keeps them since hpresil/connections.py), or as
    ``--connections`` says."""
    if args.connections == "agents":
        return (code / "hpresil" / "connections.py").exists()
    return bool(args.connections == "kept")


def held_count(args: argparse.Namespace, mix: fleet.Mix) -> int:
    """The fleet's other agents' connections, as many as this process may open."""
    if args.held is not None:
        return int(args.held)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(0, min(mix.nodes - args.concurrency, soft - 2_000))


@contextlib.contextmanager
def held(ctl: Controller, count: int) -> Iterator[dict[str, Any]]:
    """``count`` connections to the controller, each having asked GET /healthz once and
    kept open idle (the agents between two heartbeats), for the block; what they cost
    the controller in memory. The figures fill the yielded dict."""
    figures: dict[str, Any] = {"held_idle": count}
    rss0 = fleet.proc_rss(ctl.pid)
    port = int(ctl.url.rsplit(":", 1)[1])
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
            if not sock.recv(4096).startswith(b"HTTP/1.1 200"):
                raise RuntimeError("a held connection's /healthz was not answered 200")
            socks.append(sock)
        if count:
            grown = fleet.proc_rss(ctl.pid) - rss0
            figures["controller_rss_grown_mb"] = round(grown / 2**20, 1)
            figures["controller_kb_per_held_connection"] = round(grown / count / 1024, 1)
            print(f"holding {count} idle connections: {figures}", flush=True)
        yield figures
    finally:
        for sock in socks:
            sock.close()


def measured(
    load: fleet.Load, ctl: Controller, name: str, seconds: float, paced: bool, burst: bool
) -> dict[str, Any]:
    """One phase, with the controller's CPU and its calls of the Slurm stand-ins."""
    cpu0, t0 = fleet.proc_cpu(ctl.pid), time.time()
    phase = load.run(name, seconds, paced=paced, burst=burst)
    cpu1, t1 = fleet.proc_cpu(ctl.pid), time.time()
    found = figures(phase, cpu0, cpu1, load.mix, paced)
    if ctl.slurm is not None:
        found["slurm_calls"] = fleet.slurm_calls(ctl.slurm, t0, t1)
    return found


@dataclass(frozen=True)
class Controller:
    url: str
    token: str
    pid: int
    slurm: Path | None = None


@contextlib.contextmanager
def controller(
    code: Path,
    home: Path,
    nodes: int,
    reconcile_s: float | None,
    profile_to: Path | None = None,
    *,
    keepalive_s: int | None = None,
) -> Iterator[Controller]:
    """``hpresil controller`` from ``code`` on a fresh ledger in ``home``, until the
    block ends (then SIGTERM, as systemd stops it)."""
    home.mkdir(mode=0o700)
    token = secrets.token_urlsafe(32)
    token_file = home / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    slurm = home / "slurm"
    fleet.write_slurm(slurm, fleet.node_names(nodes), PYTHON)
    port = free_port()
    config = home / "hpresil.toml"
    config.write_text(
        controller_config(port, home / "hpresil.db", token_file, slurm, reconcile_s, keepalive_s)
    )
    config.chmod(0o600)
    argv = ["--config", str(config), "controller"]
    command = [PYTHON, "-c", PROFILED, str(profile_to), *argv] if profile_to else [HPRESIL, *argv]
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    with serving(command, {**env, "PYTHONPATH": str(code)}, home / "controller.log") as proc:
        wait_ready(proc, port, home / "controller.log", lambda: nodes_seen(home / "hpresil.db"))
        while nodes_seen(home / "hpresil.db") < nodes:  # the first reconcile pass
            wait_ready(proc, port, home / "controller.log", lambda: True)
            time.sleep(0.5)
        yield Controller(f"http://127.0.0.1:{port}", token, proc.pid, slurm)


@contextlib.contextmanager
def serving(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=log.parent, env=env, stdout=out, stderr=out)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def controller_config(
    port: int,
    db: Path,
    token: Path,
    slurm: Path,
    reconcile_s: float | None,
    keepalive_s: int | None = None,
) -> str:
    reconcile = f"reconcile_interval_s = {reconcile_s}\n" if reconcile_s else ""
    if keepalive_s is not None:  # a baseline before controller.keepalive_s knows none
        reconcile += f"keepalive_s = {keepalive_s}\n"
    return (
        "[controller]\n"
        f'url = "http://127.0.0.1:{port}"\n'
        'listen_host = "127.0.0.1"\n'
        f"listen_port = {port}\n"
        f'database = "sqlite:///{db}"\n'
        f'token_file = "{token}"\n'
        f"{reconcile}"
        "\n[slurm]\n"
        f'bin_dir = "{slurm}"\n'
    )


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in LAB_PORTS:
            return port


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, also: Any) -> None:
    """Until the process answers /healthz (and ``also()`` is true), 300 s at most."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"ingest: {log.stem} exited ({proc.returncode}):\n{tail}")
        if healthy(port) and also():
            return
        time.sleep(0.5)
    raise SystemExit(f"ingest: {log.stem} was not ready within 300 s")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def nodes_seen(db: Path) -> int:
    try:
        with contextlib.closing(read_only(db)) as con:
            query = "SELECT count(*) FROM nodes WHERE slurm_seen_at IS NOT NULL"
            return int(con.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


# --- what HTTP alone costs ---
def http_floor(
    root: Path, shapes: dict[str, Any], mix: fleet.Mix, args: argparse.Namespace
) -> dict[str, Any]:
    """The capacity load against an app that only reads and answers (no resends: it
    would answer them as new)."""
    home = root / "http-floor"
    home.mkdir()
    port = free_port()
    log = home / "http-floor.log"
    with serving([PYTHON, "-c", FLOOR_SERVER, str(port)], dict(os.environ), log) as proc:
        wait_ready(proc, port, log, lambda: True)
        quiet = fleet.Mix(nodes=mix.nodes, heartbeat_s=mix.heartbeat_s, duplicate_rate=0.0)
        load = new_load(
            f"http://127.0.0.1:{port}", "-" * 32, shapes, quiet, args, keeps_connections(REPO, args)
        )
        ctl = Controller("", "", proc.pid)
        measured(load, ctl, "warm-up", 2.0, False, False)
        found = measured(load, ctl, "http floor", FLOOR_S, False, False)
    print(one_line("http floor", found), flush=True)
    return found


# --- figures ---
def figures(
    phase: fleet.Phase,
    cpu0: tuple[float, float],
    cpu1: tuple[float, float],
    mix: fleet.Mix,
    paced: bool,
) -> dict[str, Any]:
    wall = phase.ended - phase.started
    own, children = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    taken = sum(phase.kinds.values())
    per_1000 = round(own / taken * 1000, 3) if taken else None
    out: dict[str, Any] = {
        "seconds": round(wall, 2),
        "reports_per_s": round(phase.acked / wall, 1),
        "reports_acknowledged": taken,
        "requests": phase.requests,
        "ack_latency_ms": fleet.percentiles(phase.latency_ms),
        "controller_cpu_s_per_1000": per_1000,
        "reports_per_cpu_s": round(1000 / per_1000, 1) if per_1000 else None,
        "controller_cpu_share": round(own / wall, 3),
        "slurm_stand_ins_cpu_s": round(children, 2),
        "generator_cpu_share": round(phase.generator_cpu_s / wall, 3),
        "answers": dict(sorted(phase.answers.items())),
        "by_kind": dict(sorted(phase.kinds.items())),
        "retries": phase.retries,
        "resends": phase.resends,
        "waiting_at_end": phase.waiting_at_end,
    }
    if phase.name in ("capacity", "fleet"):
        out["burst"] = {
            "nodes": fleet.RACK,
            "acknowledged": len(phase.burst_ms),
            "due_to_ack_ms": fleet.percentiles(phase.burst_ms),
        }
    if paced:
        out["offered_per_s"] = round(mix.nodes / mix.heartbeat_s, 1)
        out["due_to_ack_ms"] = fleet.percentiles(phase.lag_ms)
        out["kept_up"] = phase.waiting_at_end <= max(10, mix.nodes // 1000)
    return out


def one_line(name: str, f: dict[str, Any]) -> str:
    lat = f["ack_latency_ms"]
    errors = {k: v for k, v in f["answers"].items() if k != "200"}
    text = (
        f"{name:10s} {f['reports_per_s']:7.1f} reports/s  ack p50/p95/p99 "
        f"{lat['p50']}/{lat['p95']}/{lat['p99']} ms  {f['controller_cpu_s_per_1000']} "
        f"server CPU-s per 1,000 (server {f['controller_cpu_share']:.0%} of a core, "
        f"fleet {f['generator_cpu_share']:.0%})"
    )
    if "offered_per_s" in f:
        text += f"  offered {f['offered_per_s']}/s, {f['waiting_at_end']} left waiting"
    if errors:
        text += f"  unanswered/errors {errors}"
    return text


def check_store(db: Path, ledger: fleet.Ledger, heartbeats_stored: bool) -> dict[str, Any]:
    """Every acknowledged report that must leave a row stored once (every report where
    heartbeats are stored; else those carrying an event: an XID, a port down); none
    applied twice; what the faults did."""
    with contextlib.closing(read_only(db)) as con:
        stored = Counter(rid for (rid,) in con.execute("SELECT report_id FROM reports"))
        outcome = outcomes(con)
    acknowledged = set(ledger.new) | set(ledger.duplicate)
    kept = [r for r in acknowledged if heartbeats_stored or ledger.kind.get(r) in EVENTFUL]
    found = {
        "acknowledged": len(acknowledged),
        "must_be_stored": len(kept),
        "stored": len(stored),
        "lost": sum(1 for r in kept if stored[r] == 0),
        "asked_for_state": ledger.asked_state,
        "stored_twice": sum(1 for c in stored.values() if c > 1),
        "answered_new_twice": sum(1 for c in ledger.new.values() if c > 1),
        "stored_never_sent": sum(1 for r in stored if r not in ledger.sent),
        "stored_unacknowledged": sum(1 for r in stored if r not in acknowledged),
        "resends": len(ledger.resent),
        "resends_answered": ledger.resent_answered_duplicate + ledger.resent_answered_new,
        "resends_answered_duplicate": ledger.resent_answered_duplicate,
        "resends_answered_new": ledger.resent_answered_new,
        **outcome,
    }
    found["ok"] = not any(
        found[k]
        for k in (
            "lost",
            "stored_twice",
            "answered_new_twice",
            "stored_never_sent",
            "resends_answered_new",
        )
    )
    return found


def stores_heartbeats(shapes: dict[str, Any]) -> bool:
    """Whether this side's agent sends its whole state every heartbeat (stored whole)."""
    return not shapes["heartbeat"].get("heartbeat", False)


def prime(db: Path, shapes: dict[str, Any]) -> int:
    """Where the agent sends what changed: every node's state as the controller holds it
    once the fleet has run a while (the recorded state and its digest), so that the
    phases measure a fleet in its steady state, not one first meeting its controller;
    how many nodes. Nothing where heartbeats carry the state."""
    digest = shapes["heartbeat"].get("digest")
    if stores_heartbeats(shapes) or not digest:
        return 0
    state, now = fleet.Template(shapes["state"]), datetime.now(UTC)
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con, con:
        names = [name for (name,) in con.execute("SELECT name FROM nodes")]
        rows = (
            (digest, _results_of(state.render("-" * 32, fleet.node_number(name), 1, now)), name)
            for name in names
        )
        columns = {column for _, column, *_ in con.execute("PRAGMA table_info(nodes)")}
        if "last_results" in columns:  # before migration 0008: in the node's row
            done = con.executemany(
                "UPDATE nodes SET state_digest = ?, worst = 'ok', last_results = ? WHERE name = ?",
                rows,
            )
            return done.rowcount
        con.executemany(
            "UPDATE nodes SET state_digest = ?, worst = 'ok' WHERE name = ?",
            ((digest, name) for name in names),
        )
        done = con.executemany(
            "INSERT INTO node_results (node, results) VALUES (?, ?)",
            ((name, results) for _, results, name in rows),
        )
        return done.rowcount


def _results_of(body: bytes) -> str:
    return json.dumps(json.loads(body)["results"])


def stored_bytes(db: Path) -> int:
    """The ledger's size once its write-ahead log is folded in."""
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, size, free = (
            con.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "page_size", "freelist_count")
        )
    return int((pages - free) * size)


def storage(grown: int, phases: dict[str, Any], mix: fleet.Mix) -> dict[str, Any]:
    """What the phases' reports added to the ledger, per report and per node-day (a
    node sends 86,400 / heartbeat_s reports a day: 8,640; the phases' mix of changes
    and a rack's burst included)."""
    taken = sum(p["reports_acknowledged"] for p in phases.values())
    per_report = grown / taken if taken else 0.0
    per_day = 86_400 / mix.heartbeat_s
    return {
        "ledger_growth_bytes": grown,
        "reports_taken": taken,
        "bytes_per_report": round(per_report, 1),
        "mb_per_node_day": round(per_report * per_day / 1e6, 3),
    }


def outcomes(con: sqlite3.Connection) -> dict[str, Any]:
    """Incidents, shared faults and actions (kind and status) in the ledger."""
    try:
        actions = con.execute("SELECT kind, status, count(*) FROM actions GROUP BY 1, 2")
        return {
            "incidents": con.execute("SELECT count(*) FROM incidents").fetchone()[0],
            "shared_faults": con.execute("SELECT count(*) FROM shared_faults").fetchone()[0],
            "actions": {f"{kind} {status}": n for kind, status, n in actions},
        }
    except sqlite3.Error as exc:  # a schema this reader does not know
        return {"outcomes_unread": str(exc)}


def summarize(
    sides: dict[str, dict[str, Any]],
    floor: dict[str, Any] | None,
    shapes: dict[str, Any],
    mix: fleet.Mix,
    args: argparse.Namespace,
    base_sha: str | None,
    tree: dict[str, Any],
) -> dict[str, Any]:
    sample = fleet.Load("http://-", "-" * 32, shapes, fleet.Mix(nodes=fleet.RACK), concurrency=1)
    result: dict[str, Any] = {
        "target": TARGET,
        "command": " ".join(["scripts/bench/ingest", *sys.argv[1:]]),
        "baseline": {"rev": args.baseline, "commit": base_sha},
        "working_tree": tree,
        "fleet": {
            "nodes": mix.nodes,
            "heartbeat_s": mix.heartbeat_s,
            "change_rate": mix.change_rate,
            "duplicate_rate": mix.duplicate_rate,
            "burst_nodes": fleet.RACK,
            "phase_s": args.seconds,
            "concurrency": args.concurrency,
            "client": args.client,
            "connections": args.connections,
            "body_bytes": sample.body_bytes,
            "results_per_report": sample.results_per_report,
            "reconcile_interval_s": args.reconcile_s or "shipped default (5)",
        },
        "sides": sides,
        "http_floor": floor,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if "baseline" in sides:
        result["working_tree_over_baseline"] = ratios(sides["baseline"], sides["working tree"])
    return result


def ratios(base: dict[str, Any], new: dict[str, Any]) -> dict[str, float | None]:
    def ratio(phase: str, *path: str) -> float | None:
        a, b = base["phases"][phase], new["phases"][phase]
        for key in path:
            a, b = a[key], b[key]
        return round(b / a, 2) if a and b else None

    alone = {}
    if ALONE in base["phases"] and ALONE in new["phases"]:
        alone = {
            "ingest_alone_reports_per_s": ratio(ALONE, "reports_per_s"),
            "ingest_alone_controller_cpu_s_per_1000": ratio(ALONE, "controller_cpu_s_per_1000"),
        }
    return {
        **alone,
        "capacity_reports_per_s": ratio("capacity", "reports_per_s"),
        "capacity_controller_cpu_s_per_1000": ratio("capacity", "controller_cpu_s_per_1000"),
        "capacity_ack_p99_ms": ratio("capacity", "ack_latency_ms", "p99"),
        "fleet_reports_per_s": ratio("fleet", "reports_per_s"),
        "fleet_ack_p99_ms": ratio("fleet", "ack_latency_ms", "p99"),
        "storage_per_node_day": _ratio(
            base["store"]["storage"]["mb_per_node_day"], new["store"]["storage"]["mb_per_node_day"]
        ),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(b / a, 4) if a and b else None


def show(result: dict[str, Any]) -> None:
    """The sides in columns."""
    sides = result["sides"]
    rows: list[list[str]] = [["", *sides]]

    def row(label: str, phase: str | None, *path: str) -> None:
        cells = []
        for side in sides.values():
            value: Any = side["phases"][phase] if phase else side
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            cells.append(str(value))
        rows.append([label, *cells])

    phases = ["capacity", "fleet"] + [ALONE] * all(ALONE in s["phases"] for s in sides.values())
    for phase in phases:
        row(f"{phase}: reports/s", phase, "reports_per_s")
        for q in ("p50", "p95", "p99"):
            row(f"  ack {q} ms", phase, "ack_latency_ms", q)
        row("  controller CPU-s per 1,000", phase, "controller_cpu_s_per_1000")
        row("  reports per CPU-second", phase, "reports_per_cpu_s")
        row("  burst: acknowledged of 32", phase, "burst", "acknowledged")
        row("  burst: due -> ack p99 ms", phase, "burst", "due_to_ack_ms", "p99")
        row("  answers", phase, "answers")
        row("  slurm calls", phase, "slurm_calls")
    row("fleet: offered per s", "fleet", "offered_per_s")
    row("fleet: due -> ack p99 ms", "fleet", "due_to_ack_ms", "p99")
    row("fleet: left waiting at the end", "fleet", "waiting_at_end")
    for key in ("lost", "stored_twice", "answered_new_twice", "resends_answered_new"):
        row(f"store: {key}", None, "store", key)
    row("store: asked for a node's state", None, "store", "asked_for_state")
    row("store: MB per node-day", None, "store", "storage", "mb_per_node_day")
    row("store: bytes per report", None, "store", "storage", "bytes_per_report")
    row("store: incidents", None, "store", "incidents")
    row("store: shared faults", None, "store", "shared_faults")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    for key, value in (result.get("working_tree_over_baseline") or {}).items():
        print(f"working tree / baseline, {key}: {value}")


# --- where the time goes ---
def profile(root: Path, shapes: dict[str, Any], mix: fleet.Mix, args: argparse.Namespace) -> int:
    """The capacity phase against the working tree's controller under cProfile."""
    import pstats

    out = root / "controller.prof"
    with controller(REPO, root / "profiled", mix.nodes, args.reconcile_s, out) as ctl:
        load = new_load(ctl.url, ctl.token, shapes, mix, args, keeps_connections(REPO, args))
        load.run("warm-up", args.warmup, paced=False, burst=False)
        os.kill(ctl.pid, signal.SIGUSR1)
        while not Path(f"{out}.start").exists():
            time.sleep(0.1)
        found = measured(load, ctl, "capacity", args.seconds, False, True)
    print(one_line("profiled", found))
    window = since(load_stats(Path(f"{out}.start")), load_stats(out))
    kept = Path(tempfile.gettempdir()) / "hpresil-ingest.prof"
    kept.write_bytes(marshal.dumps(window))
    where(window, found["reports_acknowledged"])
    stats = pstats.Stats(str(kept))
    stats.sort_stats("tottime").print_stats(25)
    print(f"the window's profile: {kept} (python -m pstats {kept})")
    return 0


def where(window: dict[Any, Any], reports: int) -> None:
    """CPU ms per report of each row of :data:`WHERE`, and its share of the window."""
    total = sum(stat[2] for stat in window.values())
    print(f"CPU in the window: {total:.1f} s (every thread, profiler included), {reports} reports")
    for label, path, name in WHERE:
        cum = sum(
            stat[3]
            for (file, _, func), stat in window.items()
            if file.endswith(path) and func == name
        )
        per = cum / reports * 1000 if reports else 0.0
        print(f"  {label:40s} {per:8.2f} ms per report  {cum / total:6.1%}")


def load_stats(path: Path) -> dict[Any, Any]:
    stats: dict[Any, Any] = marshal.loads(path.read_bytes())
    return stats


def since(start: dict[Any, Any], end: dict[Any, Any]) -> dict[Any, Any]:
    """pstats figures of ``end`` less those of ``start``: what happened in between
    (a function still running at the end, a thread's loop, is left out)."""
    out = {}
    for func, (cc, nc, tt, ct, callers) in end.items():
        c0, n0, t0, u0, callers0 = start.get(func, (0, 0, 0.0, 0.0, {}))
        if nc - n0 <= 0:
            continue
        calls = {
            caller: tuple(a - b for a, b in zip(value, callers0.get(caller, (0,) * 4), strict=True))
            for caller, value in callers.items()
        }
        kept = {caller: value for caller, value in calls.items() if value[0] > 0}
        out[func] = (cc - c0, nc - n0, tt - t0, ct - u0, kept)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
