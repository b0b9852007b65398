"""``hpresil stats mttf``: mean time to failure and to repair from the ledger."""

from __future__ import annotations

import click

from hpresil.cli.output import emit_json, hours, json_option, table
from hpresil.client import ControllerClient
from hpresil.config import Config


@click.group()
def stats() -> None:
    """Reliability statistics from the incident ledger."""


@stats.command()
@click.option(
    "--by", type=click.Choice(["all", "node", "category"]), default="all", show_default=True
)
@json_option
@click.pass_obj
def mttf(cfg: Config, by: str, as_json: bool) -> None:
    """MTTF (node-hours in service per hardware failure; nodes without failures count
    their exposure too) and MTTR (drain to return to service)."""
    with ControllerClient.from_config(cfg) as client:
        view = client.mttf(by)
    if as_json:
        emit_json(view)
        return
    rows = [*view.rows, view.total] if by != "all" else [view.total]
    table(
        f"MTTF by {by}",
        [
            by if by != "all" else "scope",
            "nodes",
            "node-hours",
            "failures",
            "MTTF h",
            "repairs",
            "MTTR h",
        ],
        [
            [
                r.key,
                str(r.nodes),
                hours(r.exposure_h),
                str(r.failures),
                hours(r.mttf_h),
                str(r.repairs),
                hours(r.mttr_h),
            ]
            for r in rows
        ],
    )


COMMANDS = [stats]
