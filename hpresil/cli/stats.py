"""``hpresil stats mttf``: mean time to failure and to repair from the ledger;
``hpresil stats mttr``: time to recovery per rung of the recovery ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from hpresil.api import Durations, MttrRow, MttrRung, MttrView
from hpresil.cli.output import age, emit_json, hours, json_option, table, when
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


@stats.command()
@click.option(
    "--since",
    "days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Incidents detected in the last DAYS days.  [default: 30]",
)
@json_option
@click.pass_obj
def mttr(cfg: Config, days: float | None, as_json: bool) -> None:
    """MTTR per rung of the recovery ladder (reset, reboot, burn-in, resume, replace),
    per failure category (back in service by the ladder, resumed by hand, sent to
    replace, still open), and which rung cleared the incidents back in service."""
    since = None if days is None else datetime.now(UTC) - timedelta(days=days)
    with ControllerClient.from_config(cfg) as client:
        view = client.mttr(since)
    if as_json:
        emit_json(view)
        return
    _rungs(view)
    _categories(view)
    _cleared(view)


def _rungs(view: MttrView) -> None:
    table(
        f"Recovery steps of the incidents detected since {when(view.since)}",
        ["rung", "steps", "passed", "failed", "stopped", "running", "p50", "p95", "mean"],
        [_rung_row(r) for r in view.rungs],
    )


def _rung_row(r: MttrRung) -> list[str]:
    counts = (r.steps, r.passed, r.failed, r.stopped, r.running)
    return [r.rung, *(str(n) for n in counts), *_spread(r.took)]


def _categories(view: MttrView) -> None:
    columns = ["category", "incidents", "back", "p50", "p95", "mean", "by hand", "its p50"]
    table(
        "MTTR by category (p50, p95, mean: detected to back in service by the ladder)",
        [*columns, "replace", "open"],
        [_category_row(r) for r in [*view.categories, view.total]],
    )


def _category_row(r: MttrRow) -> list[str]:
    back = [str(r.back), *_spread(r.mttr)]
    by_hand = [str(r.by_hand), age(r.by_hand_mttr.p50_s)]
    return [r.key, str(r.incidents), *back, *by_hand, str(r.replaced), str(r.open)]


def _cleared(view: MttrView) -> None:
    table(
        "Back in service, cleared by",
        ["cleared by", "incidents", "MTTR p50", "p95", "mean"],
        [[c.rung or "burn-in only", str(c.incidents), *_spread(c.mttr)] for c in view.cleared_by],
    )


def _spread(d: Durations) -> list[str]:
    return [age(d.p50_s), age(d.p95_s), age(d.mean_s)]


COMMANDS = [stats]
