#!/usr/bin/env python3
"""A simulated fleet of hpresil agents, for scripts/bench/ingest.

* :func:`record_shapes`: what a real agent sends. The agent (hpresil.agent.service)
  runs once on this machine, its GPUs eight H100 SXM read through pynvml from the NVML
  double, its InfiniBand a copy of ``tests/fixtures/sysfs/infiniband-ndr8``, munged and
  slurmd stand-ins running (``sleep`` under their names, so the services check passes
  as on a compute node), and four of its reports are kept: its first (the whole
  state), a heartbeat (the same as the first where the agent sends its state every
  heartbeat; a digest and no results where it sends what changed), the report of an
  XID 79 injected into its kernel log, and the report once ``mlx5_3``'s port went down
  (``overlays/port-down``). Run in a process of its own (``fleet.py record OUT``), on
  the code of the side measured (``HPRESIL_FLEET_CODE``): the NVML double must be the
  first NVML loaded in a process, and each side's agent speaks its own protocol.
* :class:`Template`: a recorded report as bytes with slots (report id, node, seq, the
  times, each GPU's UUID and serial), rendered per node without encoding JSON again,
  byte for byte as the agent's client encodes it (``json.dumps(model_dump(mode="json"))``).
* :func:`write_slurm`: ``sinfo``, ``squeue``, ``scontrol`` and ``scancel`` stand-ins that
  list the fleet in Slurm 22.05's JSON (each node the shape of
  ``tests/fixtures/slurm/sinfo-22.05.json``), print a leaf switch per rack for
  ``scontrol show topology``, record drains and resumes in the listing, and each call
  in ``calls`` (:func:`slurm_calls`).
* :class:`Load`: the agents, in one asyncio loop. Every node signs each request with its
  own key (:class:`hpresil.auth.NodeKey`) and posts to ``/v1/reports``, at most
  ``concurrency`` requests in flight, on a fresh connection each (the agent's client
  before hpresil/connections.py opened one per request) or with ``keepalive`` one kept
  connection per slot (as the agent's client keeps one now); the request as the standard
  library writes it (:class:`RawSender`: httpx.AsyncClient, ``client="httpx"``, costs
  five times the CPU per request, and tops out near 300 a second here). A report not
  acknowledged (no answer within the agent's 5 s, or 408, 429, 502, 503, 504: what the
  agent's client counts as unavailable) is sent again, same id, after the agent's
  ``flush_s`` (2 s); a share of acknowledged reports is sent once more (an
  acknowledgement lost on the way) and must be answered as a duplicate. An
  acknowledgement asking for the node's state (``send_state``) makes that node's next
  report its whole state (kind ``state``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CODE = Path(os.environ.get("HPRESIL_FLEET_CODE") or REPO)  # the side's, when recording
if str(CODE) not in sys.path:
    sys.path.insert(0, str(CODE))  # hpresil and tests.nvmldouble, when recording

from hpresil.auth import NodeKey, node_key  # noqa: E402

RACK = 32  # nodes per rack, each rack under one leaf switch
PATH = "/v1/reports"
UNAVAILABLE = frozenset({408, 429, 502, 503, 504})  # hpresil.client.UNAVAILABLE
SHAPES = ("heartbeat", "xid79", "ib_down", "state")


def node_names(nodes: int) -> list[str]:
    return [f"gpu{i:05d}" for i in range(nodes)]


# --- what a real agent sends ---
def record_shapes(out: Path) -> None:
    """Record the three report shapes from a real agent into ``out`` (JSON)."""
    from hpresil.agent.inject import inject_xid
    from hpresil.agent.service import Agent
    from hpresil.vocab import Report
    from tests.nvmldouble import reading
    from tests.unit.agent.fakes import FakeController

    with tempfile.TemporaryDirectory(prefix="hpresil-bench-shapes-") as tmp:
        root = Path(tmp)
        ib = root / "infiniband"
        shutil.copytree(REPO / "tests/fixtures/sysfs/infiniband-ndr8", ib)
        cfg = _agent_config(root, ib)
        daemons = _stand_in_daemons(root / "bin")
        try:
            with reading(root / "nvml.state"):
                ctl = FakeController()
                agent = Agent(cfg, "node1", ctl)
                agent.start()
                try:
                    state = ctl.wait_for(lambda r: True, 10)
                    heartbeat = state
                    if "heartbeat" in Report.model_fields:  # sends what changed
                        heartbeat = ctl.wait_for(lambda r: bool(r.heartbeat), 10)
                    inject_xid(cfg, "node1", 79, 3)
                    xid79 = ctl.wait_for(lambda r: any(x.xid == 79 for x in r.results), 5)
                    _overlay(REPO / "tests/fixtures/sysfs/overlays/port-down", ib)
                    ib_down = ctl.wait_for(lambda r: _fails(r, "ib"), 5)
                finally:
                    agent.stop()
        finally:
            for proc in daemons:
                proc.kill()
                proc.wait()
    found = {"heartbeat": heartbeat, "xid79": xid79, "ib_down": ib_down, "state": state}
    missing = [name for name, rep in found.items() if rep is None]
    if missing:
        raise SystemExit(f"fleet: the agent sent no {', '.join(missing)} report")
    shapes = {name: rep.model_dump(mode="json") for name, rep in found.items() if rep}
    unhealthy = [r["check"] for r in shapes["state"]["results"] if r["status"] == "fail"]
    if unhealthy:
        raise SystemExit(f"fleet: the recorded state fails {unhealthy}: not a healthy node")
    out.write_text(json.dumps(shapes))


def _agent_config(root: Path, ib: Path) -> Any:
    from hpresil.config import parse

    kmsg = root / "kmsg" / "node1.log"
    kmsg.parent.mkdir()
    kmsg.write_text("[    1.000000] Linux version 6.8\n")
    return parse(
        {
            "controller": {"url": "http://127.0.0.1:9", "token_file": str(root / "token")},
            "agent": {
                "spool_dir": str(root / "spool" / "{node}"),
                "cache_file": str(root / "run" / "{node}.verdict.json"),
                "poll_s": 0.3,
                "flush_s": 0.2,
                "kernel_log": {"source": "file", "path": str(kmsg), "poll_s": 0.05},
                "gpu": {"backend": "nvml"},
            },
            "checks": {"ib": {"sysfs_root": str(ib)}},
        }
    )


def _stand_in_daemons(bin_dir: Path) -> list[subprocess.Popen[bytes]]:
    """``munged`` and ``slurmd`` running, as on a compute node (``sleep``, renamed)."""
    bin_dir.mkdir()
    procs = []
    for name in ("munged", "slurmd"):
        shutil.copy(shutil.which("sleep") or "/bin/sleep", bin_dir / name)
        procs.append(subprocess.Popen([str(bin_dir / name), "120"]))
    return procs


def _overlay(source: Path, tree: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            (tree / path.relative_to(source)).write_bytes(path.read_bytes())


def _fails(report: Any, check: str) -> bool:
    return any(r.check == check and r.status.value == "fail" for r in report.results)


def load_shapes(python: str, out: Path, code: Path = REPO) -> dict[str, dict[str, Any]]:
    """Record the shapes of ``code``'s agent in a fresh process (``python``); read them."""
    env = {**os.environ, "HPRESIL_FLEET_CODE": str(code), "PYTHONPATH": str(code)}
    subprocess.run(
        [python, str(Path(__file__).resolve()), "record", str(out)],
        cwd=code,
        env=env,
        check=True,
        timeout=120,
    )
    shapes: dict[str, dict[str, Any]] = json.loads(out.read_text())
    return shapes


# --- rendering a report for any node ---
_SLOT = re.compile(r'"@@([a-z_0-9]+)@@"')


class Template:
    """A recorded report whose per-report and per-node values are slots."""

    def __init__(self, report: dict[str, Any]) -> None:
        marked = json.loads(json.dumps(report))
        marked.update(report_id="@@report_id@@", node="@@node@@", seq="@@seq@@")
        marked["sent_at"] = "@@time@@"
        for gpu in marked["gpus"]:
            _mark_gpu(gpu)
        for result in marked["results"]:
            result["observed_at"] = "@@time@@"
            if isinstance(result.get("gpu"), dict):
                _mark_gpu(result["gpu"])
        pieces = _SLOT.split(json.dumps(marked))
        self._text = [p.encode() for p in pieces[0::2]]
        self._slots = pieces[1::2]
        self._gpus = sorted({g["index"] for g in report["gpus"]})
        self.results = len(report["results"])

    def render(self, report_id: str, node: int, seq: int, now: datetime) -> bytes:
        values = {
            "report_id": _q(report_id),
            "node": _q(node_names_one(node)),
            "seq": str(seq).encode(),
            "time": _q(now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            **_gpu_values(node, self._gpus),
        }
        out = [self._text[0]]
        for slot, text in zip(self._slots, self._text[1:], strict=True):
            out.append(values[slot])
            out.append(text)
        return b"".join(out)


def node_names_one(node: int) -> str:
    return f"gpu{node:05d}"


def node_number(name: str) -> int:
    """The number of :func:`node_names_one`'s ``name``."""
    return int(name.removeprefix("gpu"))


def _mark_gpu(gpu: dict[str, Any]) -> None:
    index = gpu["index"]
    if gpu.get("uuid"):
        gpu["uuid"] = f"@@uuid{index}@@"
    if gpu.get("serial"):
        gpu["serial"] = f"@@serial{index}@@"


def _gpu_values(node: int, indexes: Sequence[int]) -> dict[str, bytes]:
    """Each node's own GPUs (an XID on one node's GPU 3 is not another's)."""
    values = {}
    for index in indexes:
        values[f"uuid{index}"] = _q(f"GPU-{node:08x}-5d6f-9111-{index:012x}")
        values[f"serial{index}"] = _q(str(1650000000000 + node * 64 + index))
    return values


def _q(text: str) -> bytes:
    return b'"' + text.encode() + b'"'


# --- Slurm, as the controller asks it ---
def write_slurm(bin_dir: Path, names: Sequence[str], python: str) -> None:
    """Stand-ins for Slurm 22.05's clients in ``bin_dir``, listing ``names``. The
    listing is ``sinfo.head``, a file per node under ``nodes/`` (in name order, each
    after the first starting with the comma before it) and ``sinfo.tail``, so that
    ``scontrol`` reads or rewrites one node's file, as slurmctld answers for one node
    in milliseconds (a stand-in that rewrote the 26 MB listing for each drain took a
    CPU-second per call from the machine the controller is measured on)."""
    bin_dir.mkdir(parents=True)
    fixture = json.loads((REPO / "tests/fixtures/slurm/sinfo-22.05.json").read_text())
    head = json.dumps({"meta": fixture["meta"], "errors": []})[:-1] + ', "nodes": [\n'
    (bin_dir / "sinfo.head").write_text(head)
    (bin_dir / "sinfo.tail").write_text("]}\n")
    (bin_dir / "nodes").mkdir()
    for i, name in enumerate(names):
        node = json.dumps(_slurm_node(fixture["nodes"][1], name, i))
        (bin_dir / "nodes" / name).write_text(("," if i else "") + node + "\n")
    (bin_dir / "squeue.json").write_text(
        json.dumps({"meta": fixture["meta"], "errors": [], "jobs": []})
    )
    leaves = [
        f"SwitchName=leaf{i // RACK} Level=0 LinkSpeed=1 Nodes={_hostlist(names[i : i + RACK])}"
        for i in range(0, len(names), RACK)
    ]
    (bin_dir / "topology.txt").write_text("\n".join(leaves) + "\n")
    _script(bin_dir / "sinfo", SINFO)
    _script(bin_dir / "squeue", SQUEUE)
    _script(bin_dir / "scancel", '#!/bin/bash\necho "scancel $EPOCHREALTIME" >> "${0%/*}/calls"\n')
    _script(bin_dir / "scontrol", f"#!{python} -I\n{SCONTROL}")


def slurm_calls(bin_dir: Path, since: float, until: float) -> dict[str, int]:
    """How often the controller ran each stand-in between two ``time.time()``s."""
    try:
        lines = (bin_dir / "calls").read_text().splitlines()
    except FileNotFoundError:
        return {}
    found: Counter[str] = Counter()
    for line in lines:
        command, _, at = line.rpartition(" ")
        if since <= float(at) < until:
            found[command] += 1
    return dict(sorted(found.items()))


def _hostlist(names: Sequence[str]) -> str:
    """``gpu[00000-00031]`` for consecutive names of :func:`node_names`."""
    return f"gpu[{names[0][3:]}-{names[-1][3:]}]" if len(names) > 1 else names[0]


def _slurm_node(template: dict[str, Any], name: str, index: int) -> dict[str, Any]:
    node = dict(template)
    node.update(
        name=name,
        hostname=name,
        address=f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
        state="idle",
        state_flags=[],
        reason="",
        reason_changed_at=0,
        reason_set_by_user=None,
        gres_used="gpu:0",
    )
    return node


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


SINFO = (  # the listing, whole, and a line in calls for each call
    '#!/bin/bash\nd="${0%/*}"\necho "sinfo $EPOCHREALTIME" >> "$d/calls"\n'
    'exec cat "$d/sinfo.head" "$d"/nodes/* "$d/sinfo.tail"\n'
)
SQUEUE = (
    '#!/bin/bash\necho "squeue $EPOCHREALTIME" >> "${0%/*}/calls"\nexec cat "${0%/*}/squeue.json"\n'
)

SCONTROL = r'''"""scontrol for the ingest benchmark: `show topology`, `show node -o N`;
`update nodename=N state=drain reason=R` and `state=resume` rewrite N's file under
nodes/ (what sinfo lists); anything else succeeds."""
import fcntl, json, os, pwd, sys, time
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls"), "a") as log:
    log.write(f"scontrol {' '.join(args[:1])} {time.time()}\n")
if args[:2] == ["show", "topology"]:
    sys.stdout.write(open(os.path.join(here, "topology.txt")).read())
    sys.exit(0)


def node_file(name):
    """(its file, whether it starts with a comma, the node); the node None: no such."""
    path = os.path.join(here, "nodes", os.path.basename(name))
    if not os.path.isfile(path):
        return path, False, None
    text = open(path).read()
    return path, text.startswith(","), json.loads(text.lstrip(","))


if args[:2] == ["show", "node"]:  # -o NAME: one line, as 22.05 prints it
    name = args[-1]
    node = node_file(name)[2]
    if node is None:
        print(f"Node {name} not found")
        sys.exit(1)
    flags = [f.upper() for f in node.get("state_flags") or []]
    line = f"NodeName={name} Arch=x86_64 State={'+'.join([node['state'].upper(), *flags])}"
    if node.get("reason"):
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(node["reason_changed_at"]))
        line += f" Reason={node['reason']} [{node['reason_set_by_user']}@{when}]"
    print(line)
    sys.exit(0)
fields = dict(a.split("=", 1) for a in args[1:] if "=" in a)
if args[:1] != ["update"] or "nodename" not in {k.lower() for k in fields}:
    sys.exit(0)
fields = {k.lower(): v for k, v in fields.items()}
with open(os.path.join(here, "nodes.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    path, comma, node = node_file(fields["nodename"])
    if node is None:
        sys.stderr.write("scontrol: error: Invalid node name specified\n")
        sys.exit(1)
    if fields.get("state", "").lower() == "drain":
        node.update(state_flags=["DRAIN"], reason=fields.get("reason", ""),
                    reason_set_by_user=pwd.getpwuid(os.getuid()).pw_name,
                    reason_changed_at=int(time.time()))
    elif fields.get("state", "").lower() == "resume":
        node.update(state_flags=[], reason="", reason_set_by_user=None)
    new = os.path.join(here, "node.new")  # beside nodes/, not in it: sinfo's glob
    with open(new, "w") as out:
        out.write(("," if comma else "") + json.dumps(node) + "\n")
    os.replace(new, path)
'''


# --- the agents ---
@dataclass
class Item:
    """One report of one node, from its first delivery to its acknowledgement."""

    node: int
    kind: str  # heartbeat, change, burst, state
    report_id: str = ""
    body: bytes = b""
    resend: bool = False  # sent again after its acknowledgement (a lost answer)
    attempts: int = 0
    due: float = 0.0  # when the node wanted it sent (monotonic)


@dataclass
class Ledger:
    """What the controller answered, by report id, across phases."""

    new: Counter[str] = field(default_factory=Counter)  # answered "accepted, not duplicate"
    duplicate: Counter[str] = field(default_factory=Counter)  # answered "duplicate"
    sent: set[str] = field(default_factory=set)
    kind: dict[str, str] = field(default_factory=dict)  # report id -> kind
    asked_state: int = 0  # acknowledgements asking for the node's state
    resent: set[str] = field(default_factory=set)  # deliberately sent again after an ack
    resent_answered_duplicate: int = 0
    resent_answered_new: int = 0


@dataclass
class Phase:
    """One phase's figures, as they come in."""

    name: str
    started: float = 0.0
    ended: float = 0.0
    acked: int = 0  # reports acknowledged as new within the phase
    requests: int = 0
    latency_ms: list[float] = field(default_factory=list)  # every request, unanswered too
    lag_ms: list[float] = field(default_factory=list)  # due -> acknowledged, new reports
    burst_ms: list[float] = field(default_factory=list)  # due -> acknowledged, the rack's
    answers: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # new reports by kind
    retries: int = 0
    resends: int = 0
    waiting_at_end: int = 0  # due (or to retry) but not sent when the phase ended
    generator_cpu_s: float = 0.0  # this process's, the load generator's


@dataclass(frozen=True)
class Mix:
    nodes: int = 20_000
    heartbeat_s: float = 10.0
    change_rate: float = 0.001  # share of reports carrying a change (XID 79)
    duplicate_rate: float = 0.01  # share of acknowledged reports sent once more
    burst_at: float = 0.5  # the rack reports its fault this far into a phase
    timeout_s: float = 5.0  # controller.request_timeout_s
    retry_s: float = 2.0  # agent.flush_s
    seed: int = 12


class Unanswered(Exception):
    """No HTTP answer: a timeout or a connection error (the text says which)."""


class RawSender:
    """HTTP/1.1 over asyncio streams, the request as the agent's urllib client writes it
    (its headers, ``Connection: close``); with ``keepalive``, one connection per slot,
    kept. About a fifth of httpx's CPU per request here, which matters: the fleet and
    the controller share the machine."""

    def __init__(self, url: str, timeout: float, keepalive: bool) -> None:
        netloc = url.split("//", 1)[1].rstrip("/")
        host, _, port = netloc.partition(":")
        self._host, self._port = host, int(port or 80)
        self._timeout, self._keepalive = timeout, keepalive
        self._head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {netloc}\r\nAccept-Encoding: identity\r\n"
            "Content-Type: application/json\r\nUser-Agent: Python-urllib/3.11\r\n"
        )
        self._open: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def post(self, slot: int | None, body: bytes, auth: str) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(slot, body, auth)
        except TimeoutError:
            self._drop(slot)
            raise Unanswered("timeout") from None
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self._drop(slot)
            raise Unanswered(type(exc).__name__) from None

    async def _exchange(self, slot: int | None, body: bytes, auth: str) -> tuple[int, bytes]:
        keep = self._keepalive and slot is not None
        stream = self._open.get(slot) if keep and slot is not None else None
        if stream is None:
            stream = await asyncio.open_connection(self._host, self._port)
        reader, writer = stream
        close = "" if keep else "Connection: close\r\n"
        head = f"{self._head}Content-Length: {len(body)}\r\nAuthorization: {auth}\r\n{close}\r\n"
        writer.write(head.encode() + body)
        status = int((await reader.readline()).split()[1])
        length, closing = -1, not keep
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                closing = True
        data = await reader.readexactly(length) if length >= 0 else await reader.read()
        if closing:
            writer.close()
            self._drop(slot)
        elif slot is not None:
            self._open[slot] = stream
        return status, data

    def _drop(self, slot: int | None) -> None:
        stream = self._open.pop(slot, None) if slot is not None else None
        if stream is not None:
            stream[1].close()

    async def aclose(self) -> None:
        for _, writer in self._open.values():
            writer.close()
        self._open.clear()


class HttpxSender:
    """The same through ``httpx.AsyncClient`` (``--client httpx``)."""

    def __init__(self, url: str, timeout: float, keepalive: bool, connections: int) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections if keepalive else 0,
        )
        self._client = httpx.AsyncClient(
            base_url=url, limits=limits, timeout=httpx.Timeout(timeout)
        )

    async def post(self, slot: int | None, body: bytes, auth: str) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Authorization": auth}
        try:
            answer = await self._client.post(PATH, content=body, headers=headers)
        except httpx.TimeoutException:
            raise Unanswered("timeout") from None
        except httpx.TransportError as exc:
            raise Unanswered(type(exc).__name__) from None
        return answer.status_code, answer.content

    async def aclose(self) -> None:
        await self._client.aclose()


class Load:
    """The fleet against one controller; one :meth:`run` per phase."""

    def __init__(
        self,
        url: str,
        token: str,
        shapes: dict[str, dict[str, Any]],
        mix: Mix,
        *,
        concurrency: int,
        keepalive: bool = False,
        client: str = "raw",
    ) -> None:
        self.mix = mix
        self.ledger = Ledger()
        self.concurrency = concurrency
        self._url, self._keepalive, self._client = url, keepalive, client
        self._templates = {name: Template(shapes[name]) for name in SHAPES}
        self._keys = [NodeKey(n, node_key(token, n)) for n in node_names(mix.nodes)]
        self._seq = [0] * mix.nodes
        self._rng = random.Random(mix.seed)
        phases = [self._rng.random() * mix.heartbeat_s for _ in range(mix.nodes)]
        self._order = sorted(range(mix.nodes), key=phases.__getitem__)
        self._phase_of = phases
        self._cursor = 0  # next node in heartbeat order, across phases
        self._round = 0
        self._racks_hit: set[int] = set()
        self._wants_state: set[int] = set()  # nodes whose next report is their state

    @property
    def body_bytes(self) -> dict[str, int]:
        now = datetime.now(UTC)
        return {k: len(t.render("x" * 32, 0, 1, now)) for k, t in self._templates.items()}

    @property
    def results_per_report(self) -> int:
        return self._templates["state"].results

    def run(self, name: str, seconds: float, *, paced: bool, burst: bool = True) -> Phase:
        """Send for ``seconds``: paced (each node every ``heartbeat_s``, the fleet's own
        rate) or closed-loop (the next node's report as soon as a slot is free: the
        controller's capacity). Waits for what is in flight when time is up."""
        return asyncio.run(self._run(Phase(name), seconds, paced, burst))

    async def _run(self, phase: Phase, seconds: float, paced: bool, burst: bool) -> Phase:
        sender = self._sender()
        try:
            await _Run(self, sender, phase, seconds, paced).go(
                self._burst_rack() if burst else None
            )
        finally:
            await sender.aclose()
        return phase

    def _sender(self) -> RawSender | HttpxSender:
        if self._client == "httpx":
            slots = self.concurrency + RACK
            return HttpxSender(self._url, self.mix.timeout_s, self._keepalive, slots)
        return RawSender(self._url, self.mix.timeout_s, self._keepalive)

    # --- what the nodes send ---
    def heartbeats(self) -> Iterator[tuple[int, float]]:
        """(node, seconds from the first) in the fleet's heartbeat order, forever; each
        phase goes on where the last one stopped."""
        n, hb = self.mix.nodes, self.mix.heartbeat_s
        first_round, first = self._round, self._phase_of[self._order[self._cursor]]
        while True:
            node = self._order[self._cursor]
            due = (self._round - first_round) * hb + self._phase_of[node] - first
            self._cursor += 1
            if self._cursor == n:
                self._cursor, self._round = 0, self._round + 1
            yield node, due

    def fresh(self, item: Item) -> None:
        """Give ``item`` its report (a heartbeat may turn into a change)."""
        if item.kind == "heartbeat" and item.node in self._wants_state:
            item.kind = "state"
            self._wants_state.discard(item.node)
        if item.kind == "heartbeat" and self._rng.random() < self.mix.change_rate:
            item.kind = "change"
        shape = {"heartbeat": "heartbeat", "change": "xid79", "burst": "ib_down"}.get(
            item.kind, item.kind
        )
        self._seq[item.node] += 1
        item.report_id = uuid.uuid4().hex
        self.ledger.kind[item.report_id] = item.kind
        item.body = self._templates[shape].render(
            item.report_id, item.node, self._seq[item.node], datetime.now(UTC)
        )

    def state_wanted(self, node: int) -> None:
        self.ledger.asked_state += 1
        self._wants_state.add(node)

    def resend_wanted(self) -> bool:
        return self._rng.random() < self.mix.duplicate_rate

    def sign(self, item: Item) -> str:
        return self._keys[item.node].authorization("POST", PATH, item.body)

    def _burst_rack(self) -> list[int]:
        racks = max(1, self.mix.nodes // RACK)
        rack = self._rng.randrange(racks)
        while rack in self._racks_hit and len(self._racks_hit) < racks:
            rack = self._rng.randrange(racks)
        self._racks_hit.add(rack)
        return list(range(rack * RACK, min(self.mix.nodes, (rack + 1) * RACK)))


class _Run:
    """One phase in flight: workers, the paced feed, retries, the burst."""

    def __init__(
        self,
        load: Load,
        sender: RawSender | HttpxSender,
        phase: Phase,
        seconds: float,
        paced: bool,
    ) -> None:
        self.load, self.sender, self.phase = load, sender, phase
        self.seconds, self.paced = seconds, paced
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.ready: deque[Item] = deque()  # retries and resends whose time has come
        self.waiting = 0  # retries and resends not yet ready
        self.end = 0.0
        self.beats = load.heartbeats()

    async def go(self, rack: list[int] | None) -> None:
        self.phase.started = time.monotonic()
        self.end = self.phase.started + self.seconds
        cpu0 = time.process_time()
        tasks = [asyncio.create_task(self.worker(slot)) for slot in range(self.load.concurrency)]
        if self.paced:
            tasks.append(asyncio.create_task(self.feed()))
        if rack:
            tasks.append(asyncio.create_task(self.burst(rack, self.load.mix.burst_at)))
        await asyncio.gather(*tasks)
        self.phase.ended = time.monotonic()
        self.phase.waiting_at_end = self.queue.qsize() + len(self.ready) + self.waiting
        self.phase.generator_cpu_s = time.process_time() - cpu0

    async def feed(self) -> None:
        """Paced: put each node's heartbeat on the queue when it is due."""
        t0 = self.phase.started
        node, due = next(self.beats)
        while time.monotonic() < self.end:
            now = time.monotonic()
            while t0 + due <= now:
                self.queue.put_nowait(Item(node=node, kind="heartbeat", due=t0 + due))
                node, due = next(self.beats)
            await asyncio.sleep(min(0.01, max(0.0, t0 + due - now)))

    async def take(self) -> Item | None:
        while time.monotonic() < self.end:
            if self.ready:
                return self.ready.popleft()
            if not self.paced:
                node, _ = next(self.beats)
                return Item(node=node, kind="heartbeat", due=time.monotonic())
            try:
                return await asyncio.wait_for(self.queue.get(), 0.05)
            except TimeoutError:
                continue
        return None

    async def worker(self, slot: int) -> None:
        while (item := await self.take()) is not None:
            await self.deliver(item, slot)

    async def burst(self, rack: list[int], at: float) -> None:
        """A rack's nodes report their fault at once (each its own agent: no slot to
        wait for)."""
        await asyncio.sleep(at * self.seconds)
        due = time.monotonic()
        items = [Item(node=n, kind="burst", due=due) for n in rack]
        await asyncio.gather(*(self.deliver(item, None) for item in items))

    async def deliver(self, item: Item, slot: int | None) -> None:
        """Send ``item`` once; schedule its retry or its resend."""
        if not item.body:
            self.load.fresh(item)
        item.attempts += 1
        self.load.ledger.sent.add(item.report_id)
        self.phase.requests += 1
        t0 = time.perf_counter()
        try:
            status, data = await self.sender.post(slot, item.body, self.load.sign(item))
        except Unanswered as exc:
            self.phase.latency_ms.append((time.perf_counter() - t0) * 1e3)
            self.phase.answers[str(exc)] += 1
            self.later(item, retry=True)
            return
        self.phase.latency_ms.append((time.perf_counter() - t0) * 1e3)
        self.phase.answers[str(status)] += 1
        if status in UNAVAILABLE:
            self.later(item, retry=True)
        elif status == 200:  # anything else is refused: the agent sets it aside
            self.acknowledged(item, json.loads(data))

    def acknowledged(self, item: Item, ack: dict[str, Any]) -> None:
        ledger, phase = self.load.ledger, self.phase
        duplicate = bool(ack.get("duplicate"))
        if ack.get("send_state"):
            self.load.state_wanted(item.node)
        (ledger.duplicate if duplicate else ledger.new)[item.report_id] += 1
        if item.resend:
            if duplicate:
                ledger.resent_answered_duplicate += 1
            else:
                ledger.resent_answered_new += 1
            return
        phase.retries += item.attempts - 1
        done = time.monotonic()
        if not duplicate:
            if done <= self.end:
                phase.acked += 1
            phase.kinds[item.kind] += 1
            phase.lag_ms.append((done - item.due) * 1e3)
            if item.kind == "burst":
                phase.burst_ms.append((done - item.due) * 1e3)
        if self.load.resend_wanted():
            again = Item(item.node, item.kind, item.report_id, item.body, resend=True, due=done)
            ledger.resent.add(item.report_id)
            phase.resends += 1
            self.later(again, retry=False)

    def later(self, item: Item, *, retry: bool) -> None:
        """Retry after the agent's flush interval; a resend at once."""
        delay = self.load.mix.retry_s if retry else 0.0
        self.waiting += 1

        def ready() -> None:
            self.waiting -= 1
            self.ready.append(item)

        asyncio.get_running_loop().call_later(delay, ready)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 1)}


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) CPU-seconds of ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


if __name__ == "__main__":
    if sys.argv[1:2] != ["record"] or len(sys.argv) != 3:
        raise SystemExit("usage: fleet.py record OUT.json")
    record_shapes(Path(sys.argv[2]))


def proc_rss(pid: int) -> int:
    """The process's resident memory, in bytes (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status: no VmRSS")
