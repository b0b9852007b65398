#!/usr/bin/env python3
"""Agent footprint: the lab with hpresil's defaults as on a real node (poll 5 s,
heartbeat 10 s, the kernel log read from /dev/kmsg), one agent per node; samples
node1's agent process every 5 s for the duration (default 600 s): RSS (max, last) and
CPU time / wall time. Writes scripts/bench/results/agent_footprint.json.

(The lab's usual file-based kernel log, polled every 0.1 s so injections are seen at
once, costs about 0.2 % of a core by itself; real nodes read /dev/kmsg, blocking.)"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from lab import Lab  # noqa: E402
from scenario import wait_agents  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    lab = Lab(fast_agents=False, kernel_log="kmsg")
    try:
        lab.down()
        lab.reset_state()
        lab.up(hpresil=True)
        wait_agents(lab, timeout=90)
        pid = int((lab.run_dir / "agent.node1.pid").read_text())
        proc = psutil.Process(pid)
        time.sleep(5)  # past start-up
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.monotonic()
        rss: list[float] = []
        deadline = wall0 + args.seconds
        while time.monotonic() < deadline:
            rss.append(proc.memory_info().rss / 2**20)
            time.sleep(5)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.monotonic() - wall0
        threads = proc.num_threads()
    finally:
        lab.down()
    share = 100 * cpu / wall
    result = {
        "seconds": round(wall, 1),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_last": round(rss[-1], 1),
        "cpu_percent_of_one_core": round(share, 3),
        "threads": threads,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"agent on node1 over {wall:.0f} s at default intervals (poll 5 s, heartbeat 10 s):")
    print(
        f"  RSS max {result['rss_mib_max']} MiB, last {result['rss_mib_last']} MiB "
        "(target <= 50 MB)"
    )
    print(f"  CPU {share:.3f}% of one core (target <= 0.5%), {threads} threads")
    out = HERE / "results" / "agent_footprint.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"raw figures: {out.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
