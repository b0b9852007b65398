"""``hpresil status``, ``hpresil drain``, ``hpresil resume``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from hpresil.api import MAX_NODES, NodeView
from hpresil.cli.output import age, emit_json, json_option, styled, table
from hpresil.client import ControllerClient
from hpresil.config import Config
from hpresil.vocab import Health

if TYPE_CHECKING:
    from rich.text import Text

_HEALTH_STYLE = {
    Health.OK: "green",
    Health.WARN: "yellow",
    Health.FAIL: "bold red",
    Health.STALE: "magenta",
    Health.UNKNOWN: "dim",
}


RICH_ROWS = 500  # more rows print as plain columns: rich lays out ~1.5 ms a row
_COLUMNS = ["node", "slurm", "health", "incident", "last report", "gpus", "reason"]
_PLAIN_STYLE = {
    Health.OK: "green",
    Health.WARN: "yellow",
    Health.FAIL: "red",
    Health.STALE: "magenta",
}


@click.command()
@click.argument("hosts", metavar="[NODES]", required=False)
@click.option("--state", help="Only nodes whose Slurm state contains this: drain, down, idle...")
@click.option("--unhealthy", is_flag=True, help="Only nodes whose health is not ok.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_NODES - 1),
    help="At most this many nodes; the last line then says how to ask for the next ones.",
)
@click.option("--after", metavar="NODE", help="Start after this node (the next page).")
@json_option
@click.pass_obj
def status(
    cfg: Config,
    hosts: str | None,
    state: str | None,
    unhealthy: bool,
    limit: int | None,
    after: str | None,
    as_json: bool,
) -> None:
    """One row per node: Slurm state, hpresil health, open incident, last report age.
    NODES: a Slurm host list such as gpu[001-128],login1. Nodes come in natural order
    (node2 before node10)."""
    asked = None if limit is None else limit + 1  # one more: whether a next page exists
    with ControllerClient.from_config(cfg) as client:
        rows = client.nodes(hosts, state=state, unhealthy=unhealthy, limit=asked, after=after)
    shown = rows if limit is None else rows[:limit]
    if as_json:
        emit_json(shown)
    elif len(shown) > RICH_ROWS:
        _plain(shown)
    else:
        table("nodes", _COLUMNS, [_rich_row(n) for n in shown])
    if len(rows) > len(shown):
        click.echo(f"more follow: the same command with --after {shown[-1].name}", err=True)


def _cells(n: NodeView) -> list[str]:
    return [
        n.name,
        n.slurm_state or "-",
        n.health.value,
        f"#{n.open_incident}" if n.open_incident else "-",
        age(n.last_report_age_s),
        "-" if n.gpus is None else str(n.gpus),
        n.slurm_reason or "",
    ]


def _rich_row(n: NodeView) -> list[str | Text]:
    row: list[str | Text] = list(_cells(n))
    row[2] = styled(n.health.value, _HEALTH_STYLE[n.health])
    return row


def _plain(nodes: list[NodeView]) -> None:
    """Aligned columns, as sinfo prints them; the health coloured on a terminal."""
    rows = [[c.upper() for c in _COLUMNS], *(_cells(n) for n in nodes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    colour = [None, *(_PLAIN_STYLE.get(n.health) for n in nodes)]
    lines = []
    for row, fg in zip(rows, colour, strict=True):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        cells[2] = click.style(cells[2], fg=fg) if fg else cells[2]
        lines.append("  ".join(cells).rstrip())
    click.echo("\n".join(lines))


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


@click.command()
@click.argument("node")
@click.option("--why", required=True, help="What you are doing with it (shown in the ledger).")
@json_option
@click.pass_obj
def hold(cfg: Config, node: str, why: str, as_json: bool) -> None:
    """Leave NODE to me: the recovery ladder starts nothing on it (no reboot, no
    replace hook) and stops the step under way, until `hpresil release NODE`."""
    with ControllerClient.from_config(cfg) as client:
        answer = client.hold(node, why)
    emit_json(answer) if as_json else click.echo(f"{node}: held by {answer.held_by}: {why}")


@click.command()
@click.argument("node")
@json_option
@click.pass_obj
def release(cfg: Config, node: str, as_json: bool) -> None:
    """Give NODE back to the recovery ladder (ends `hpresil hold NODE`)."""
    with ControllerClient.from_config(cfg) as client:
        answer = client.release(node)
    emit_json(answer) if as_json else click.echo(f"{node}: released")


COMMANDS = [status, drain, resume, hold, release]
