"""The ledger of a large fleet, for scripts/bench/ledger_scale: 20,000 nodes and
1,000,000 incidents, written in bulk (raw ``executemany`` on SQLite, ``COPY`` on
PostgreSQL) into a database migrated by hpresil.

* Nodes ``gpu00001`` … : in the fleet for up to two years (60 % from the start, the rest
  joined since), listed by Slurm (but for 20 stored from reports alone), most of them
  reporting now, 1 % stale, 1 % that never reported. Each reporting node keeps the
  results of ``hpresil check --tier continuous`` on 8 H100 (91 results, 39 KB of JSON,
  recorded through the NVML double): 95 % all healthy, 3 % with a WARN, 2 % with a FAIL
  that does not drain. Slurm states: mostly ALLOCATED, MIXED, IDLE; 3 % drained.
* Incidents: 50 a node on average over the two years, detected at random times, in
  hpresil's categories (80 % hardware), 10 % a job's (a hang, blamed on the job), 2 %
  put down to one of 200 shared components; 75 % drained (30 s after detection),
  returned to service 30 min to 48 h later; 3 % of nodes with their latest still open.
  Downtime overlaps now and then, as on a real ledger (an operator drain on a node
  already out).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, make_url

from hpresil.vocab import Action, Category

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=730)
GPU_CHECKS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ecc": (
        "ok",
        "no uncorrected ECC errors",
        {
            "uncorrected_volatile": 0,
            "corrected_volatile": 0,
            "enabled": True,
            "uncorrected_aggregate": 0,
            "corrected_aggregate": 0,
            "dram_corrected": 0,
            "sram_corrected": 0,
            "sram_threshold_exceeded": False,
        },
    ),
    "row_remap": (
        "ok",
        "0 rows remapped, none pending",
        {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
    ),
    "retired_pages": ("unsupported", "no page retirement", {}),
    "temperature": (
        "ok",
        "35 C",
        {
            "gpu_c": 35,
            "memory_c": 40,
            "gpu_max_c": 87,
            "mem_max_c": 95,
            "slowdown_c": 89,
            "shutdown_c": 95,
        },
    ),
    "clock_events": (
        "ok",
        "no hardware slowdown",
        {
            "active": ["gpu_idle"],
            "events": {"hw_slowdown": 0, "hw_thermal": 0, "hw_power_brake": 0},
            "per_min": {"hw_slowdown": 0.0, "hw_thermal": 0.0, "hw_power_brake": 0.0},
            "samples": 1,
            "window_s": 600.0,
        },
    ),
    "power": ("ok", "70 W", {"draw_w": 70.0, "limit_w": 700.0, "power_brake": False}),
    "pcie": (
        "ok",
        "Gen5 x16",
        {
            "gen": 5,
            "max_gen": 5,
            "width": 16,
            "max_width": 16,
            "replays": 0,
            "replays_per_min": None,
            "utilization_pct": 0,
        },
    ),
    "nvlink": (
        "ok",
        "18 links active",
        {"links": 18, "inactive": [], "counters_judged": True},
    ),
    "fabric": (
        "ok",
        "fabric completed",
        {"state": "completed", "status": "success", "clique_id": 0, "cluster_uuid": None},
    ),
    "recovery_action": (
        "ok",
        "no recovery action pending",
        {"recovery_action": 0, "name": "none"},
    ),
}
HOST_CHECKS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("gpu_presence", "ok", "8 GPUs present of 8", {"found": 8, "expected": 8}),
    ("dcgm_health", "unsupported", "DCGM not available: dcgmi not found", {}),
    ("ib", "ok", "8 ports active", {"root": "/sys/class/infiniband", "ports": 8}),
    *[
        (
            "headroom",
            "ok",
            f"{path}: enough free space",
            {
                "measured_at": path,
                "total_bytes": 270553174016,
                "free_bytes": 84208005120,
                "inodes": 16777216,
                "free_inodes": 16338199,
                "error": None,
            },
        )
        for path in ("/", "/tmp", "/var/spool/slurmd", "/var/lib/hpresil")
    ],
    ("processes", "ok", "D state: no process stuck", {"total": 78, "d_state": []}),
    ("processes", "ok", "zombies: none", {"total": 78, "zombies": []}),
    ("services", "ok", "munged: running", {"pids": [812], "unit": "munge.service"}),
    ("services", "ok", "slurmd: running", {"pids": [901], "unit": "slurmd.service"}),
]
BUS = ("18", "2a", "3a", "5d", "9a", "ab", "ba", "db")
HARDWARE = [c for c in Category if c.is_hardware and c is not Category.UNKNOWN]


@dataclass(frozen=True)
class Shape:
    nodes: int = 20_000
    incidents: int = 1_000_000
    shared: int = 200
    seed: int = 12


def node_name(i: int) -> str:
    return f"gpu{i:05d}"


def results(node: int, worst: str) -> list[dict[str, Any]]:
    """A node's stored results: 10 checks on each of 8 GPUs, 11 on the host; ``worst``
    (ok, warn, fail) is the status of the temperature check on GPU 3."""
    at = (NOW - timedelta(seconds=node % 10)).isoformat().replace("+00:00", "Z")
    out = []
    for check, (status, summary, evidence) in GPU_CHECKS.items():
        for i, bus in enumerate(BUS):
            gpu = {
                "index": i,
                "uuid": f"GPU-{node:08x}-{i:04x}-5b53-8d75-e776fe1f2ad2",
                "serial": f"16504{node:05d}{i:03d}",
                "pci_bus_id": f"0000:{bus}:00",
                "name": "NVIDIA H100 80GB HBM3",
            }
            mine = worst if (check, i) == ("temperature", 3) and worst != "ok" else status
            text = f"GPU {i} (0000:{bus}:00): {summary}"
            out.append(_result(check, mine, text, gpu, evidence, at))
    out += [_result(c, s, text, None, e, at) for c, s, text, e in HOST_CHECKS]
    return out


def _result(
    check: str, status: str, summary: str, gpu: Any, evidence: dict[str, Any], at: str
) -> dict[str, Any]:
    action = {"fail": "watch"}.get(status, "none")
    category = "thermal_power" if status in ("warn", "fail") else None
    return {
        "check": check,
        "status": status,
        "action": action,
        "category": category,
        "summary": summary,
        "gpu": gpu,
        "xid": None,
        "evidence": evidence,
        "observed_at": at,
    }


@dataclass
class NodeSpec:
    name: str
    first_seen_at: datetime
    last_report_at: datetime | None
    results: str | None
    worst: str | None  # of the results, as the ingest keeps it beside them (nodes.worst)
    slurm_state: str
    slurm_reason: str | None
    slurm_seen_at: datetime | None


def nodes(shape: Shape, rng: random.Random) -> Iterator[NodeSpec]:
    texts = {w: json.dumps(results(0, w)) for w in ("ok", "warn", "fail")}
    for i in range(1, shape.nodes + 1):
        joined = START if rng.random() < 0.6 else START + timedelta(days=rng.uniform(0, 700))
        roll = rng.random()
        last: datetime | None = NOW - timedelta(seconds=rng.uniform(0, 10))
        if roll < 0.01:
            last = None
        elif roll < 0.02:
            last = NOW - timedelta(hours=1)
        worst = rng.choices(("ok", "warn", "fail"), (95, 3, 2))[0]
        state = rng.choices(
            ("ALLOCATED", "MIXED", "IDLE", "MIXED+DRAIN", "IDLE+DRAIN", "DOWN+NOT_RESPONDING"),
            (45, 25, 25, 2, 1, 2),
        )[0]
        yield NodeSpec(
            name=node_name(i),
            first_seen_at=joined,
            last_report_at=last,
            results=None if last is None else texts[worst],
            worst=None if last is None else worst,
            slurm_state=state,
            slurm_reason="hpresil: xid 79 on GPU 3" if "DRAIN" in state else None,
            slurm_seen_at=None if i % 1000 == 999 else NOW,
        )


@dataclass
class IncidentSpec:
    node: str
    status: str
    category: Category
    action: Action
    hardware: bool
    summary: str
    gpu: int | None
    detected_at: datetime
    drained_at: datetime | None
    resolved_at: datetime | None
    job_id: int | None
    shared_id: int | None


def incidents(shape: Shape, rng: random.Random, fleet: list[NodeSpec]) -> Iterator[IncidentSpec]:
    """Each node's incidents one after the other over its time in the fleet (hpresil
    keeps at most one open per node: the next opens after the last is resolved), spread
    so the fleet has ``shape.incidents``; a job's incident may come at any time. One
    node in 500 also has an operator's drain overlapping a fault's downtime."""
    lives = [(NOW - n.first_seen_at).total_seconds() for n in fleet]
    per_second = shape.incidents / sum(lives)
    counts = [int(life * per_second) for life in lives]
    for k in rng.sample(range(len(fleet)), shape.incidents - sum(counts)):
        counts[k] += 1
    open_on = set(rng.sample(range(len(fleet)), len(fleet) * 3 // 100))
    for k, (node, life, count) in enumerate(zip(fleet, lives, counts, strict=True)):
        slot = life / max(count, 1)
        for j in range(count):
            start = node.first_seen_at + timedelta(seconds=slot * j)
            last = j == count - 1
            detected = start + timedelta(seconds=rng.uniform(0, slot / 2))
            yield _incident(node.name, detected, rng, slot / 2, last and k in open_on)
            if j == count // 2 and k % 500 == 7:  # an operator's drain over a fault's
                yield _operator(node.name, detected + timedelta(minutes=10))


def _operator(node: str, at: datetime) -> IncidentSpec:
    return IncidentSpec(
        node=node,
        status="resolved",
        category=Category.OPERATOR,
        action=Action.DRAIN,
        hardware=False,
        summary="fan noise",
        gpu=None,
        detected_at=at,
        drained_at=at,
        resolved_at=at + timedelta(hours=2),
        job_id=None,
        shared_id=None,
    )


def _incident(
    node: str, detected: datetime, rng: random.Random, room_s: float, still_open: bool
) -> IncidentSpec:
    roll = rng.random()
    job = rng.randint(1, 2_000_000) if roll < 0.10 else None
    if job is not None:
        category = rng.choice((Category.JOB_HANG, Category.APP))
    elif roll < 0.16:
        category = Category.OPERATOR
    elif roll < 0.20:
        category = Category.APP
    else:
        category = rng.choice(HARDWARE)
    drained = detected + timedelta(seconds=30) if job is None and rng.random() < 0.85 else None
    resolved = None
    if not still_open:
        out_s = min(rng.uniform(0.5, 48) * 3600, room_s)
        resolved = (drained or detected) + timedelta(seconds=out_s)
        resolved = None if resolved > NOW else resolved
    gpu = rng.randrange(8) if category.is_hardware else None
    return IncidentSpec(
        node=node,
        status="open" if resolved is None else "resolved",
        category=category,
        action=Action.REBOOT if drained else Action.WATCH,
        hardware=category.is_hardware,
        summary=f"{category.value} on {node}" + ("" if gpu is None else f" GPU {gpu}"),
        gpu=gpu,
        detected_at=detected,
        drained_at=drained,
        resolved_at=resolved,
        job_id=job,
        shared_id=rng.randint(1, 200) if job is None and rng.random() < 0.02 else None,
    )


NODE_COLUMNS = [
    "name",
    "first_seen_at",
    "last_report_at",
    "last_seq",
    "gpus",
    "worst",
    "slurm_state",
    "slurm_reason",
    "drained_by_hpresil",
    "slurm_seen_at",
]
INCIDENT_COLUMNS = [
    "node",
    "status",
    "category",
    "action",
    "hardware",
    "summary",
    "xid",
    "gpu_index",
    "gpu_uuid",
    "gpu_serial",
    "gpu_pci",
    "gpu_name",
    "observed_at",
    "detected_at",
    "drained_at",
    "resolved_at",
    "findings",
    "job_id",
    "shared_id",
]
SHARED_COLUMNS = [
    "id",
    "kind",
    "component",
    "category",
    "size",
    "nodes",
    "why",
    "opened_at",
    "resolved_at",
]


def node_row(n: NodeSpec, seq: int) -> tuple[Any, ...]:
    reported = n.last_report_at is not None
    drained = n.slurm_reason is not None
    return (
        n.name,
        n.first_seen_at,
        n.last_report_at,
        seq if reported else None,
        8 if reported else None,
        n.worst,
        n.slurm_state,
        n.slurm_reason,
        drained,
        n.slurm_seen_at,
    )


def incident_row(i: IncidentSpec) -> tuple[Any, ...]:
    g, n = i.gpu, int(i.node[3:])
    return (
        i.node,
        i.status,
        i.category.value,
        i.action.value,
        i.hardware,
        i.summary,
        79 if i.category is Category.GPU_LOST_PCIE else None,
        g,
        None if g is None else f"GPU-{n:08x}-{g:04x}-5b53-8d75-e776fe1f2ad2",
        None if g is None else f"16504{n:05d}{g:03d}",
        None if g is None else f"0000:{BUS[g]}:00",
        None if g is None else "NVIDIA H100 80GB HBM3",
        i.detected_at,
        i.detected_at,
        i.drained_at,
        i.resolved_at,
        1,
        i.job_id,
        i.shared_id,
    )


def shared_row(k: int) -> tuple[Any, ...]:
    return (k, "switch", f"leaf{k:03d}", "nvlink_nvswitch", 32, "[]", "32 nodes", START, START)


def write(engine: Engine, shape: Shape) -> None:
    """Fill the (migrated, empty) database behind ``engine`` with the fleet's ledger."""
    rng = random.Random(shape.seed)
    fleet = list(nodes(shape, rng))
    node_rows = [node_row(n, k) for k, n in enumerate(fleet, start=1)]
    node_rows_results = [(n.name, n.results) for n in fleet if n.results is not None]
    shared = [shared_row(k) for k in range(1, shape.shared + 1)]
    rows = (incident_row(i) for i in incidents(shape, rng, fleet))
    if make_url(str(engine.url)).get_backend_name() == "sqlite":
        _write_sqlite(engine, node_rows, node_rows_results, shared, rows)
    else:
        _write_postgres(engine, node_rows, node_rows_results, shared, rows)


def _sqlite_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _write_sqlite(
    engine: Engine,
    node_rows: list[Any],
    held: list[Any],
    shared: list[Any],
    incident_rows: Iterator[Any],
) -> None:
    def insert(table: str, columns: list[str], rows: Any) -> str:
        marks = ", ".join("?" * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"

    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("BEGIN")
        for table, columns, rows in (
            ("nodes", NODE_COLUMNS, node_rows),
            ("node_results", ["node", "results"], held),
            ("shared_faults", SHARED_COLUMNS, shared),
            ("incidents", INCIDENT_COLUMNS, incident_rows),
        ):
            converted = (tuple(_sqlite_time(v) for v in row) for row in rows)
            cur.executemany(insert(table, columns, rows), converted)
        cur.execute("COMMIT")  # no ANALYZE: hpresil never runs it, its planner goes without
    finally:
        conn.close()


def _write_postgres(
    engine: Engine,
    node_rows: list[Any],
    held: list[Any],
    shared: list[Any],
    incident_rows: Iterator[Any],
) -> None:
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        for table, columns, rows in (
            ("nodes", NODE_COLUMNS, node_rows),
            ("node_results", ["node", "results"], held),
            ("shared_faults", SHARED_COLUMNS, shared),
            ("incidents", INCIDENT_COLUMNS, incident_rows),
        ):
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        conn.commit()
    finally:
        conn.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does to a loaded table
