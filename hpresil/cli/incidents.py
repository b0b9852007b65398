"""``hpresil incidents``: the incident ledger."""

from __future__ import annotations

import click

from hpresil.api import IncidentView, SharedFaultView
from hpresil.cli.output import emit_json, json_option, table, when
from hpresil.client import ControllerClient
from hpresil.config import Config


@click.command()
@click.argument("incident_id", type=int, required=False)
@click.option(
    "--status",
    "status_",
    type=click.Choice(["open", "resolved", "all"]),
    default="all",
    show_default=True,
)
@click.option("--node", help="Only this node's incidents.")
@click.option(
    "--shared",
    is_flag=True,
    help="The shared incidents instead: faults put down to a switch, rack or power domain.",
)
@json_option
@click.pass_obj
def incidents(
    cfg: Config,
    incident_id: int | None,
    status_: str,
    node: str | None,
    shared: bool,
    as_json: bool,
) -> None:
    """List incidents, or show one (INCIDENT_ID) with its jobs and actions.

    A node incident put down to a shared component (several nodes under one switch,
    rack or power domain failing alike at once) names it under "shared"; it does not
    count against the node's MTTF. ``--shared`` lists those components' incidents."""
    with ControllerClient.from_config(cfg) as client:
        if shared:
            found = client.shared_faults(status_)
            emit_json(found) if as_json else _shared_table(found)
            return
        if incident_id is not None:
            one = client.incident(incident_id)
            emit_json(one) if as_json else _show(one)
            return
        rows = client.incidents(status_, node)
    emit_json(rows) if as_json else _table(rows)


def _table(rows: list[IncidentView]) -> None:
    table(
        "incidents",
        [
            "id",
            "node",
            "status",
            "category",
            "xid",
            "gpu",
            "action",
            "detected",
            "drained",
            "resolved",
            "jobs",
            "shared",
        ],
        [
            [
                f"#{i.id}",
                i.node,
                i.status,
                i.category.value,
                "-" if i.xid is None else str(i.xid),
                "-" if i.gpu is None else str(i.gpu.index),
                i.action.value,
                when(i.detected_at),
                when(i.drained_at),
                when(i.resolved_at),
                str(len(i.jobs)),
                "-" if i.shared is None else f"{i.shared.kind} {i.shared.component}",
            ]
            for i in rows
        ],
    )


def _shared_table(rows: list[SharedFaultView]) -> None:
    table(
        "shared incidents",
        ["id", "component", "status", "category", "nodes", "of", "opened", "resolved", "why"],
        [
            [
                f"#{f.id}",
                f"{f.kind} {f.component}",
                f.status if f.merged_into is None else f"merged into #{f.merged_into}",
                f.category.value,
                ",".join(f.nodes),
                str(f.size),
                when(f.opened_at),
                when(f.resolved_at),
                f.why,
            ]
            for f in rows
        ],
    )


def _show(i: IncidentView) -> None:
    gpu = "-"
    if i.gpu is not None:
        gpu = f"{i.gpu.index} uuid={i.gpu.uuid or '?'} serial={i.gpu.serial or '?'}"
    click.echo(f"incident #{i.id} on {i.node}: {i.status}, {i.category.value}, {i.action.value}")
    click.echo(f"  {i.summary}")
    click.echo(f"  gpu: {gpu}   xid: {'-' if i.xid is None else i.xid}   findings: {i.findings}")
    if i.shared is not None:
        click.echo(
            f"  shared: {i.shared.kind} {i.shared.component} (shared incident #{i.shared.id}; "
            "not counted against the node's MTTF)"
        )
    click.echo(
        f"  observed {when(i.observed_at)}  detected {when(i.detected_at)}  "
        f"drained {when(i.drained_at)}  resolved {when(i.resolved_at)}"
    )
    if i.jobs:
        table(
            "jobs affected",
            ["job", "name", "requeue", "requeued", "running again", "on"],
            [
                [
                    str(j.job_id),
                    j.name,
                    j.requeue_outcome.value if j.requeue_outcome else "-",
                    when(j.requeued_at),
                    when(j.restarted_at),
                    j.restarted_node or "-",
                ]
                for j in i.jobs
            ],
        )
    if i.actions:
        table(
            "actions",
            ["kind", "target", "status", "outcome", "tries", "done", "why"],
            [
                [
                    a.kind,
                    a.target,
                    a.status.value,
                    a.outcome or "-",
                    str(a.attempts),
                    when(a.done_at),
                    a.why if not a.error else f"{a.why} [error: {a.error}]",
                ]
                for a in i.actions
            ],
        )
    _recovery(i)


def _recovery(i: IncidentView) -> None:
    """The incident's ladder: each step's rung, how it ended, when, and why."""
    if not i.recovery:
        return
    table(
        "recovery",
        ["rung", "status", "started", "ended", "outcome", "why"],
        [
            [r.rung, r.status, when(r.started_at), when(r.ended_at), r.outcome or "-", r.why]
            for r in i.recovery
        ],
    )


COMMANDS = [incidents]
