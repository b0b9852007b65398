"""``hpresil check``: run a tier of health checks on this node, now.

Exit status: 0 healthy (warnings allowed), 1 unhealthy (a check failed), 2 could not
check (a check or the GPU backend could not answer, and nothing failed).
"""

from __future__ import annotations

import json
import sys

import click

from hpresil.cli.output import status_text, table
from hpresil.config import Config
from hpresil.vocab import CheckResult, Status


@click.command()
@click.option(
    "--tier",
    type=click.Choice(["quick", "continuous", "deep", "burnin"]),
    default="quick",
    show_default=True,
    help="Which checks: quick (hooks), continuous (agent), deep (DCGM), burnin (stress).",
)
@click.option("--node", help="This node's name (default: agent.node, then the host name).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def check(cfg: Config, tier: str, node: str | None, as_json: bool) -> None:
    """Run one tier of health checks on this node and exit 0 healthy, 1 unhealthy,
    2 could not check."""
    from hpresil.localcheck import run_tier

    results = run_tier(cfg, cfg.node_name(node), tier)
    if as_json:
        click.echo(json.dumps([r.model_dump(mode="json") for r in results], indent=2))
    else:
        table(
            f"{tier} checks",
            ["check", "gpu", "status", "action", "summary"],
            [
                [
                    r.check,
                    "-" if r.gpu is None else str(r.gpu.index),
                    status_text(r.status),
                    r.action.value,
                    r.summary,
                ]
                for r in results
            ],
        )
    sys.exit(exit_code(results))


def exit_code(results: list[CheckResult]) -> int:
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return 1
    if Status.UNKNOWN in statuses or not results:
        return 2
    return 0


COMMANDS = [check]
