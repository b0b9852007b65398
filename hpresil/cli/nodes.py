"""``hpresil status``, ``hpresil drain``, ``hpresil resume``."""

from __future__ import annotations

import click

from hpresil.cli.output import age, emit_json, json_option, styled, table
from hpresil.client import ControllerClient
from hpresil.config import Config
from hpresil.vocab import Health

_HEALTH_STYLE = {
    Health.OK: "green",
    Health.WARN: "yellow",
    Health.FAIL: "bold red",
    Health.STALE: "magenta",
    Health.UNKNOWN: "dim",
}


@click.command()
@json_option
@click.pass_obj
def status(cfg: Config, as_json: bool) -> None:
    """One row per node: Slurm state, hpresil health, open incident, last report age."""
    with ControllerClient.from_config(cfg) as client:
        rows = client.nodes()
    if as_json:
        emit_json(rows)
        return
    table(
        "nodes",
        ["node", "slurm", "health", "incident", "last report", "gpus", "reason"],
        [
            [
                n.name,
                n.slurm_state or "-",
                styled(n.health.value, _HEALTH_STYLE[n.health]),
                f"#{n.open_incident}" if n.open_incident else "-",
                age(n.last_report_age_s),
                "-" if n.gpus is None else str(n.gpus),
                n.slurm_reason or "",
            ]
            for n in rows
        ],
    )


@click.command()
@click.argument("node")
@click.option("--reason", required=True, help="Why; stored and shown as 'hpresil: <reason>'.")
@click.pass_obj
def drain(cfg: Config, node: str, reason: str) -> None:
    """Drain NODE in Slurm through hpresil (opens an operator incident)."""
    with ControllerClient.from_config(cfg) as client:
        answer = client.drain(node, reason)
    incident = f" (incident #{answer.incident})" if answer.incident else ""
    click.echo(f"{node}: {answer.outcome.value}{incident}")


@click.command()
@click.argument("node")
@click.pass_obj
def resume(cfg: Config, node: str) -> None:
    """Return NODE to service, if hpresil drained it; resolves its open incidents."""
    with ControllerClient.from_config(cfg) as client:
        answer = client.resume(node)
    # A node someone else drained is refused by the controller (409), which the
    # client raises as a one-line error.
    resolved = ", ".join(f"#{i}" for i in answer.resolved_incidents)
    click.echo(f"{node}: {answer.outcome.value}" + (f"; resolved {resolved}" if resolved else ""))


COMMANDS = [status, drain, resume]
