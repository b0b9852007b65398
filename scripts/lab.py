#!/usr/bin/env python3
"""A real multi-node Slurm cluster on this one machine, plus hpresil on top of it.

Debian's ``slurm-wlm`` (22.05) runs one ``slurmctld`` and several ``slurmd -N nodeI``
side by side (``MULTIPLE_SLURMD``), each node with 8 GPUs as gres backed by character
devices. Hardware the machine lacks is stood in for at its own boundary: each node's
agent reads its GPUs through pynvml from the NVML double (a C ``libnvidia-ml.so.1``,
scripts/nvml-double) driven by the node's state file, its InfiniBand from a sysfs
tree, its kernel log from a file. Everything lives under one folder (default
``<repo>/.lab``) and every process is tracked by a PID file there, so ``down`` stops
exactly what ``up`` started. Stdlib only: the demo, the benchmarks and the
integration tests import it.

    scripts/lab.py up        # slurm + munge (+ hpresil controller and agents with --hpresil)
    scripts/lab.py env       # shell exports for using the lab's Slurm and hpresil
    scripts/lab.py inject-gpu node2 3 row_remap_failure=1   # a GPU fault on node2's GPU 3
    scripts/lab.py inject-ib node2 mlx5_3/1 down             # an InfiniBand port down
    scripts/lab.py heal node2                                # node2's GPUs and ports healthy
    scripts/lab.py down      # stop everything it started
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import gpu_double
import lab_tools_state

REPO = Path(__file__).resolve().parent.parent
PLUGINS = REPO / "slurm-plugins"
SCRIPTS = REPO / "scripts"
DEFAULT_ROOT = Path(os.environ.get("HPRESIL_LAB", REPO / ".lab"))
VENV = REPO / ".venv"
APT_PACKAGES = ("munge", "slurm-wlm")


class LabError(RuntimeError):
    pass


@dataclass
class Lab:
    root: Path = DEFAULT_ROOT
    nodes: int = 4
    gpus: int = 8
    slurmd_base_port: int = 17001
    ctld_port: int = 16817
    controller_port: int = 18787
    fast_agents: bool = True  # lab-speed agent intervals; False: hpresil's defaults
    kernel_log: str = "file"  # "kmsg": agents read the real /dev/kmsg (no injections)
    gpu_preset: str = "h100-sxm"  # the NVML double's GPU model (gpu_double.PRESETS)
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])

    # ---------- paths ----------
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def hpresil_conf(self) -> Path:
        return self.root / "etc" / "hpresil.toml"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm clients and hpresil commands that use this lab."""
        path = f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {
            **os.environ,
            "SLURM_CONF": str(self.conf),
            "HPRESIL_CONFIG": str(self.hpresil_conf),
            "PATH": path,
            "COLUMNS": os.environ.get("COLUMNS", "150"),  # rich tables, when not on a TTY
        }

    @property
    def db_dir(self) -> Path:
        """The folder of hpresil's SQLite database (and its WAL)."""
        return self.root / "db"

    def spool_dir(self, node: str) -> Path:
        return self.root / "spool" / node

    def kmsg_file(self, node: str) -> Path:
        return self.root / "kmsg" / f"{node}.log"

    def gpu_state(self, node: str) -> Path:
        """The state file of ``node``'s NVML double."""
        return self.root / "gpu" / f"{node}.state"

    def ib_tree(self, node: str) -> Path:
        return self.root / "sysfs" / node

    def node_env(self, node: str) -> dict[str, str]:
        """``env`` plus what makes pynvml load the NVML double with ``node``'s GPUs:
        for that node's agent, and for hpresil commands run as if on that node."""
        tools = f"{SCRIPTS / 'lab-tools'}:{self.env['PATH']}"  # gpu_burn, dcgmi, nvidia-smi...
        return {**self.env, **gpu_double.env(self.gpu_state(node)), "PATH": tools}

    # ---------- faults (the lab's hardware stand-ins) ----------
    def inject_gpu(self, node: str, gpu: int, **fields: object) -> Path:
        """Change GPU ``gpu`` of ``node`` in its NVML double; answers the state file."""
        gpu_double.set_gpu(self.gpu_state(node), gpu, **fields)
        return self.gpu_state(node)

    def inject_ib(self, node: str, port: str, *, up: bool) -> Path:
        """Take ``port`` ("mlx5_3/1") of ``node`` down or up; answers its state file."""
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                str(SCRIPTS / "ib_sysfs.py"),
                "up" if up else "down",
                str(self.ib_tree(node)),
                port,
            ],
            check=True,
            timeout=60,
        )
        device, _, number = port.partition("/")
        return self.ib_tree(node) / device / "ports" / (number or "1") / "state"

    def break_gpu(self, node: str, gpu: int, *, broken: bool = True) -> None:
        """GPU ``gpu`` of ``node`` broken for good: no reset or reboot mends it, and the
        burn-in stand-ins (scripts/lab-tools) fail it; NVML still sees it healthy."""
        lab_tools_state.set_broken(self.gpu_state(node), gpu, broken)

    def refuse_resets(self, node: str, *, refused: bool = True) -> None:
        """Every GPU reset on ``node`` refused, as a fabric manager holding an NVSwitch
        system's GPUs makes nvidia-smi refuse it (the stand-in's ``.reset`` sidecar)."""
        lab_tools_state.set_reset_busy(self.gpu_state(node), refused)

    def reboot_unasked(self, node: str) -> None:
        """``node`` reboots without anyone asking (a kernel panic, a power loss): its
        slurmd stops, and a moment later starts with -b ("report node reboot now"), as
        a rebooted node's does. slurmctld then marks it DOWN, "Node unexpectedly
        rebooted" (``ReturnToService=1``)."""
        self.stop_process(f"slurmd.{node}")
        time.sleep(2)  # its boot time is whole seconds: after its last answer
        argv = ["slurmd", "-f", str(self.conf), "-N", node, "-b"]
        self._spawn_slurm(argv, f"slurmd.{node}")

    def heal(self, node: str) -> None:
        """``node``'s GPUs healthy again and every InfiniBand port up."""
        gpu_double.reset(self.gpu_state(node))
        for gpu in lab_tools_state.broken(self.gpu_state(node)):
            self.break_gpu(node, gpu, broken=False)
        self.refuse_resets(node, refused=False)
        for state in self.ib_tree(node).glob("*/ports/*/state"):
            if "ACTIVE" not in state.read_text():
                self.inject_ib(node, f"{state.parents[2].name}/{state.parent.name}", up=True)

    # ---------- configuration ----------
    def write_config(self) -> None:
        for sub in ("etc", "state", "db", "run", "log", "kmsg", "gpu", "spool", "dev", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._make_gpu_devices()
        self._make_gpu_states()
        self._write_hooks()
        self._make_ib_trees()
        self.conf.write_text(self._slurm_conf())
        (self.root / "etc" / "gres.conf").write_text(
            "AutoDetect=off\n"
            f"NodeName=node[1-{self.nodes}] Name=gpu "
            f"File={self.root}/dev/nvidia[0-{self.gpus - 1}]\n"
        )
        (self.root / "etc" / "cgroup.conf").write_text("CgroupPlugin=autodetect\n")
        (self.root / "etc" / "topology.conf").write_text(self._topology_conf())
        self.hpresil_conf.write_text(self._hpresil_toml())
        token = self.root / "etc" / "token"
        if not token.exists():
            fd = os.open(token, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(os.urandom(24).hex() + "\n")
        os.chmod(token, 0o600)
        self._write_node_keys(token.read_text().strip())

    def key_file(self, node: str) -> Path:
        """``node``'s key (its agent and Slurm hook sign with it)."""
        return self.root / "etc" / "keys" / f"{node}.key"

    def _write_node_keys(self, cluster_token: str) -> None:
        """Each node's key, as ``hpresil token --node`` derives it (hpresil.auth.node_key)."""
        (self.root / "etc" / "keys").mkdir(mode=0o700, exist_ok=True)
        for node in self.node_names:
            message = b"hpresil-node-v1:" + node.encode()
            key = hmac.new(cluster_token.encode(), message, hashlib.sha256).hexdigest()
            fd = os.open(self.key_file(node), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")

    def _make_ib_trees(self) -> None:
        """One 8-port NDR InfiniBand sysfs tree per node (kept if present)."""
        for node in self.node_names:
            tree = self.ib_tree(node)
            if not tree.exists():
                python = VENV / "bin" / "python"
                subprocess.run(
                    [str(python), str(SCRIPTS / "ib_sysfs.py"), "create", str(tree)],
                    check=True,
                    timeout=60,
                )

    def _make_gpu_states(self) -> None:
        """The NVML double (built if needed) and one healthy state file per node (kept
        if present)."""
        gpu_double.build()
        for node in self.node_names:
            if not self.gpu_state(node).exists():
                gpu_double.write_node(
                    self.gpu_state(node), node, preset=self.gpu_preset, gpus=self.gpus
                )

    def _make_gpu_devices(self) -> None:
        for i in range(self.gpus):
            dev = self.root / "dev" / f"nvidia{i}"
            if dev.exists() and stat.S_ISCHR(dev.stat().st_mode):
                continue
            with suppress(FileNotFoundError):
                dev.unlink()
            os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(195, i))

    def _write_hooks(self) -> None:
        """Slurm runs hooks with almost no environment (HealthCheckProgram gets only
        SLURMD_NODENAME), so the lab points slurm.conf at wrappers that name its
        non-default config files, as a site with non-default paths would."""
        hooks = self.root / "etc" / "hooks"
        hooks.mkdir(parents=True, exist_ok=True)
        for mode in ("prolog", "epilog", "health"):
            wrapper = hooks / f"hpresil-hook-{mode}"
            wrapper.write_text(
                "#!/bin/sh\n"
                f"export HPRESIL_CONFIG={self.hpresil_conf} SLURM_CONF={self.conf}\n"
                f"exec /usr/bin/python3 -I -S {PLUGINS / 'hpresil-hook'} {mode}\n"
            )
            wrapper.chmod(0o755)
        # the TaskProlog runs the shipped wrapper with hpresil's Python (the venv here)
        wrapper = hooks / "hpresil-hook-taskprolog"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"export SLURM_CONF={self.conf} HPRESIL_PYTHON={VENV / 'bin' / 'python'}\n"
            f"exec {PLUGINS / 'hpresil-hook-taskprolog'}\n"
        )
        wrapper.chmod(0o755)

    def _slurm_conf(self) -> str:
        r = self.root
        hook = r / "etc" / "hooks" / "hpresil-hook"
        nodes = "\n".join(
            f"NodeName={n} NodeHostname={self.host} NodeAddr=127.0.0.1 "
            f"Port={self.slurmd_base_port + i} CPUs=8 RealMemory=4000 "
            f"Gres=gpu:{self.gpus} State=UNKNOWN"
            for i, n in enumerate(self.node_names)
        )
        return f"""# hpresil lab: written by scripts/lab.py, do not edit
ClusterName=hpresil-lab
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
StateSaveLocation={r}/state/ctld
SlurmdSpoolDir={r}/state/slurmd.%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.%n.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=1
JobRequeue=1
SlurmdTimeout=20
KillWait=5
MinJobAge=600
MailProg=/bin/true
SchedulerParameters=sched_interval=5,bf_interval=5
Prolog={hook}-prolog
Epilog={hook}-epilog
PrologFlags=Alloc
TaskProlog={hook}-taskprolog
HealthCheckProgram={hook}-health
HealthCheckInterval=10
HealthCheckNodeState=ANY
RebootProgram={REPO}/scripts/lab-reboot
ResumeTimeout=60
GresTypes=gpu
TopologyPlugin=topology/tree
{nodes}
PartitionName=gpu Nodes=node[1-{self.nodes}] Default=YES MaxTime=INFINITE State=UP
"""

    def _topology_conf(self) -> str:
        """The fabric (topology/tree): a leaf switch per two nodes, one spine above."""
        leaves = []
        for k, i in enumerate(range(0, self.nodes, 2), start=1):
            names = self.node_names[i : i + 2]
            leaves.append(f"SwitchName=leaf{k} Nodes={','.join(names)}")
        spine = f"SwitchName=spine Switches=leaf[1-{len(leaves)}]"
        return "# hpresil lab: written by scripts/lab.py\n" + "\n".join([*leaves, spine]) + "\n"

    def _hpresil_toml(self) -> str:
        r = self.root
        intervals = "heartbeat_s = 5.0\npoll_s = 2.0\nflush_s = 1.0\n" if self.fast_agents else ""
        kernel_log = (
            'source = "kmsg"          # as on real nodes (no per-node injection here)\n'
            if self.kernel_log == "kmsg"
            else 'source = "file"          # the lab\'s nodes share one kernel: one file each\n'
            f'path = "{r}/kmsg/{{node}}.log"\npoll_s = 0.1\n'
        )
        return f"""# hpresil lab configuration: written by scripts/lab.py
cluster = "hpresil-lab"

[controller]
url = "http://127.0.0.1:{self.controller_port}"
listen_host = "127.0.0.1"
listen_port = {self.controller_port}
database = "sqlite:///{r}/db/hpresil.db"   # a folder of its own: a test fills its disk
token_file = "{r}/etc/token"
reconcile_interval_s = 1.0
stale_after_s = 30.0

[agent]
spool_dir = "{r}/spool/{{node}}"
key_file = "{r}/etc/keys/{{node}}.key"   # each node's own key (scripts/lab.py writes them)
{intervals}cache_file = "{r}/run/{{node}}.verdict.json"

[agent.kernel_log]
{kernel_log}

[agent.gpu]
backend = "nvml"          # pynvml loads the NVML double here: one state file per node
expected_count = {self.gpus}

[checks]                 # the lab's dcgmi is a stand-in for the burn-in's diagnostic
disabled = ["dcgm_health"]   # (scripts/lab-tools): no DCGM health watches to read

[burnin]                 # the recovery ladder's burn-in, against scripts/lab-tools
gpu_burn_s = 5

[recovery]               # tests and the demo that try the ladder turn it on
enabled = false

[policy]                 # tests fault the same four nodes all session long: the
replace_after = 0        # lemon rule would call them all lemons (tests turn it on)

[hooks]
gpu_devices = "{r}/dev/nvidia[0-9]*"   # the lab's gres device files
munge_socket = "/run/munge/munge.socket.2"

[checks.ib]              # one sysfs tree per node (scripts/lab.py inject-ib)
sysfs_root = "{r}/sysfs/{{node}}"
expected_ports = 8
min_rate_gbps = 400

[jobs]
observe_s = 2.0           # the lab's jobs are short: look at them (and for orphans) often
orphan_grace_s = 4.0

[policy.limits]          # 4 nodes: the default share (10 %) would let 1 out; tests
max_out_pct = 100.0      # that try the cap and the breaker set theirs in a drop-in

[slurm]
conf = "{self.conf}"
timeout_s = 10.0
retries = 3
"""

    # ---------- processes ----------
    def up(self, *, hpresil: bool = False, timeout: float = 60.0) -> None:
        ensure_packages()
        self.write_config()
        start_munge(self.run_dir)
        if not self._alive("slurmctld"):
            self._spawn_slurm(["slurmctld", "-f", str(self.conf)], "slurmctld")
        for node in self.node_names:
            if not self._alive(f"slurmd.{node}"):
                self._spawn_slurm(["slurmd", "-f", str(self.conf), "-N", node], f"slurmd.{node}")
        self.wait_ready(timeout)
        if hpresil:
            self.start_controller()
            for node in self.node_names:
                self.start_agent(node)

    def _spawn_slurm(self, argv: list[str], name: str) -> None:
        # Both daemons fork into the background and write their own PID files.
        subprocess.run(argv, check=True, env=self.env, timeout=30)
        deadline = time.monotonic() + 10
        while not self._alive(name):
            if time.monotonic() > deadline:
                raise LabError(f"{name} did not start; see {self.log_dir}")
            time.sleep(0.1)

    def wait_ready(self, timeout: float) -> None:
        """Wait until every node answers (no '*' and no 'unknown' in sinfo)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            with suppress(subprocess.SubprocessError):
                out = self.slurm(["sinfo", "-h", "-N", "-o", "%N %T"], timeout=10).stdout
                last = out.strip()
                states = [line.split()[1] for line in out.splitlines() if line.strip()]
                if len(states) >= self.nodes and all(
                    "*" not in s and "unknown" not in s and "not_responding" not in s
                    for s in states
                ):
                    return
            time.sleep(0.5)
        raise LabError(f"slurm nodes not ready after {timeout:g} s: {last!r}")

    def slurm(self, argv: Sequence[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=timeout, check=True
        )

    def hpresil_argv(self) -> list[str]:
        return [str(VENV / "bin" / "hpresil"), "--config", str(self.hpresil_conf)]

    def start_controller(self) -> None:
        if self._alive("controller"):
            return
        self._spawn_daemon([*self.hpresil_argv(), "controller"], "controller")
        self.wait_controller()

    def wait_controller(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                suppress(OSError),
                socket.create_connection(("127.0.0.1", self.controller_port), timeout=0.5),
            ):
                return
            if not self._alive("controller"):
                raise LabError(f"controller exited; see {self.log_dir / 'controller.log'}")
            time.sleep(0.1)
        raise LabError("controller did not start listening")

    def start_agent(self, node: str) -> None:
        if not self._alive(f"agent.{node}"):
            argv = [*self.hpresil_argv(), "agent", "--node", node]
            self._spawn_daemon(argv, f"agent.{node}", self.node_env(node))

    def stop_process(self, name: str, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        with suppress(ProcessLookupError):
            os.kill(pid, sig)
        _wait_gone([pid], wait)
        if name == "controller":  # its threads and socket can outlive the main thread
            _wait_port_closed(self.controller_port, wait)
        with suppress(FileNotFoundError):
            (self.run_dir / f"{name}.pid").unlink()

    def _spawn_daemon(self, argv: list[str], name: str, env: dict[str, str] | None = None) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _pid(self, name: str) -> int | None:
        try:
            pid = int((self.run_dir / f"{name}.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def _alive(self, name: str) -> bool:
        return self._pid(name) is not None

    def down(self) -> None:
        """Stop every process this lab started, by PID: jobs, hpresil, Slurm, munge."""
        if self._alive("slurmctld"):
            with suppress(subprocess.SubprocessError, OSError):
                self.slurm(["scancel", "--full", "--quiet", "-p", "gpu"], timeout=10)
        names = ["controller", *(f"agent.{n}" for n in self.node_names)]
        pids = [p for p in (self._pid(n) for n in names) if p]
        _signal_all(pids, signal.SIGTERM)
        _wait_gone(pids, 10)
        slurm = ["slurmctld", *(f"slurmd.{n}" for n in self.node_names)]
        spids = [p for p in (self._pid(n) for n in slurm) if p]
        _signal_all(spids, signal.SIGTERM)
        _wait_gone(spids, 15)
        _signal_all(spids + pids, signal.SIGKILL)
        _kill_stepds(self.root)
        stop_munge(self.run_dir)
        for name in [*names, *slurm]:
            with suppress(FileNotFoundError):
                (self.run_dir / f"{name}.pid").unlink()

    def reset_state(self) -> None:
        """Forget everything the lab remembers (lab must be down): Slurm's saved state
        (drains, jobs), hpresil's database, spools, GPU and InfiniBand state, job output."""
        for sub in ("state", "db", "kmsg", "gpu", "sysfs", "spool", "jobs", "run"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        # configuration drop-ins a benchmark or test left behind
        shutil.rmtree(
            self.hpresil_conf.with_name(self.hpresil_conf.name + ".d"), ignore_errors=True
        )


# ---------- munge ----------
def start_munge(run_dir: Path) -> None:
    """Start munged unless one already answers; remember its PID if we started it."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return
    Path("/run/munge").mkdir(mode=0o755, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, timeout=15)
    deadline = time.monotonic() + 10
    while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise LabError("munged did not start")
        time.sleep(0.1)
    pid = Path("/run/munge/munged.pid")
    if pid.exists():
        shutil.copy(pid, run_dir / "munged.pid")


def stop_munge(run_dir: Path) -> None:
    pidfile = run_dir / "munged.pid"
    with suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        _wait_gone([pid], 5)
    with suppress(FileNotFoundError):
        pidfile.unlink()


def ensure_packages() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if os.geteuid() != 0:
        raise LabError("the lab needs root to install munge and slurm-wlm")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES],
        check=True,
        env=env,
    )


# ---------- process helpers ----------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _signal_all(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_port_closed(port: int, timeout: float) -> None:
    """Until nothing listens on ``port`` (a killed process's socket is gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.05)


def _kill_stepds(root: Path) -> None:
    """slurmstepd processes of this lab's jobs outlive slurmd: find them by spool dir."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with suppress(OSError):
            cmd = (proc / "cmdline").read_bytes()
            if b"slurmstepd" in cmd or str(root / "jobs").encode() in cmd:
                os.kill(int(proc.name), signal.SIGKILL)


@contextmanager
def running(lab: Lab, *, hpresil: bool = True) -> Iterator[Lab]:
    """Bring the lab up for the duration of a block; always take it down."""
    try:
        lab.up(hpresil=hpresil)
        yield lab
    finally:
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=["up", "down", "env", "status", "reset", "inject-gpu", "inject-ib", "heal"],
    )
    parser.add_argument(
        "args",
        nargs="*",
        help="inject-gpu: NODE GPU KEY=VALUE...; inject-ib: NODE PORT down|up; heal: NODE",
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--hpresil", action="store_true", help="also start controller + agents")
    args = parser.parse_args(argv)
    lab = Lab(root=args.root.resolve(), nodes=args.nodes)
    try:
        if args.command in ("inject-gpu", "inject-ib", "heal"):
            print(_fault(lab, args.command, args.args))
        elif args.command == "up":
            lab.up(hpresil=args.hpresil)
            print(f"lab up: {lab.nodes} nodes under {lab.root}; `eval $({sys.argv[0]} env)`")
        elif args.command == "down":
            lab.down()
        elif args.command == "reset":
            lab.down()
            lab.reset_state()
        elif args.command == "env":
            print(f"export SLURM_CONF={lab.conf} HPRESIL_CONFIG={lab.hpresil_conf}")
        else:
            print(json.dumps({"slurm": lab.slurm(["sinfo", "-N"]).stdout}))
    except (LabError, ValueError, subprocess.SubprocessError, OSError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _fault(lab: Lab, command: str, args: list[str]) -> str:
    """The lab's fault commands (see the module's usage)."""
    if command == "inject-gpu" and len(args) >= 3:
        node, gpu, changes = args[0], int(args[1]), gpu_double.parse_assignments(args[2:])
        lab.inject_gpu(node, gpu, **changes)
        return f"{node} gpu {gpu}: " + ", ".join(f"{k}={v}" for k, v in changes.items())
    if command == "inject-ib" and len(args) == 3 and args[2] in ("down", "up"):
        lab.inject_ib(args[0], args[1], up=args[2] == "up")
        return f"{args[0]} {args[1]} {args[2]}"
    if command == "heal" and len(args) == 1:
        lab.heal(args[0])
        return f"{args[0]}: GPUs healthy, InfiniBand ports up"
    raise LabError(f"{command}: unexpected arguments {args!r}; see `lab.py --help`")


if __name__ == "__main__":
    sys.exit(main())
