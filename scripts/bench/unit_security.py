#!/usr/bin/env python3
"""Unit hardening: ``systemd-analyze security --offline=yes`` on ``systemd/*.service``.

For each unit prints the overall exposure (0.0 safest to 10.0) and the settings that
still cost the most; with ``--baseline REV`` also the same units as committed at REV
(the figures before hardening). No systemd as PID 1 is needed. Writes
``scripts/bench/results/unit_security.json``. Goal: every unit <= 4.0. Standard
library only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
UNITS = sorted((ROOT / "systemd").glob("*.service"))
GOAL = 4.0
WORST = 8  # settings listed per unit
_OVERALL = re.compile(r"Overall exposure level for \S+: (?P<score>[\d.]+) (?P<verdict>\w+)")


def analyze(unit: Path) -> dict[str, Any]:
    """The overall exposure and every setting still open, costliest first."""
    base = ["systemd-analyze", "security", "--offline=yes", "--no-pager"]
    text = subprocess.run([*base, str(unit)], capture_output=True, text=True).stdout
    m = _OVERALL.search(text)
    if m is None:
        raise SystemExit(f"unit_security: no overall exposure for {unit}:\n{text}")
    table = json.loads(
        subprocess.run(
            [*base, "--json=short", str(unit)], capture_output=True, text=True, check=True
        ).stdout
    )
    open_items = sorted(
        (
            {"setting": row["name"], "exposure": float(row["exposure"]), "why": row["description"]}
            for row in table
            if row["exposure"] is not None and not row["set"]
        ),
        key=lambda item: -item["exposure"],
    )
    return {"exposure": float(m["score"]), "verdict": m["verdict"], "open": open_items}


def at_revision(rev: str, folder: Path) -> list[Path]:
    """The units as committed at ``rev``, written under ``folder`` with their names."""
    paths = []
    for unit in UNITS:
        name = f"{rev}:systemd/{unit.name}"
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", name], capture_output=True, text=True, check=True
        ).stdout
        path = folder / unit.name
        path.write_text(text)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="also score the units at this commit")
    args = parser.parse_args()
    version = subprocess.run(
        ["systemd-analyze", "--version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    before: dict[str, Any] = {}
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            for path in at_revision(args.baseline, Path(tmp)):
                scored = analyze(path)
                before[path.name] = {k: scored[k] for k in ("exposure", "verdict")}
    after = {unit.name: analyze(unit) for unit in UNITS}
    for name, now in after.items():
        was = before.get(name)
        head = f"{was['exposure']} {was['verdict']} -> " if was else ""
        print(f"{name}: {head}{now['exposure']} {now['verdict']} (goal <= {GOAL})")
        for item in now["open"][:WORST]:
            print(f"  {item['exposure']:.1f}  {item['setting']:<45} {item['why']}")
    result = {
        "systemd": version,
        "goal": GOAL,
        "units": {
            name: {
                **{k: now[k] for k in ("exposure", "verdict")},
                "worst_open": now["open"][:WORST],
            }
            for name, now in after.items()
        },
        "baseline": {"rev": args.baseline, "units": before} if args.baseline else None,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = HERE / "results" / "unit_security.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"raw figures: {out.relative_to(ROOT)}")
    return 0 if all(now["exposure"] <= GOAL for now in after.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
