"""``hpresil policy replay``: what another ``[policy]`` would have done with the stored
history, beside what hpresil did (:mod:`hpresil.controller.replay`).

Run on the controller's host: it reads the database itself, read-only
(``controller.database`` of the configuration in use), since it needs the stored
reports' bodies and the controller's API serves none. It writes nothing and needs no
running controller. ``--config`` names the configuration to replay (its ``[policy]``;
read as any configuration, StrictModes included); without it, the one in use, which
should show no difference.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from hpresil import config
from hpresil.cli.output import emit_json, json_option, table, when
from hpresil.config import Config

if TYPE_CHECKING:  # the replay and the store load when the command runs, not with the CLI
    from hpresil.controller import replay as engine

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


@click.group()
def policy() -> None:
    """The remediation policy: replay it over the stored history."""


@policy.command()
@click.option(
    "--since", default="30d", show_default=True, help="How far back: a number and d, h, m or s."
)
@click.option(
    "--config",
    "other",
    type=click.Path(dir_okay=False),
    help="Replay this configuration's [policy] (default: the one in use).",
)
@json_option
@click.pass_obj
def replay(cfg: Config, since: str, other: str | None, as_json: bool) -> None:
    """Replay the stored reports with a policy; print the drains it would have added
    or removed, the jobs it would have requeued, the nodes it would have kept in
    service."""
    from hpresil.controller import replay as engine
    from hpresil.store.history import open_read_only

    start = datetime.now(UTC) - _duration(since)
    replayed = config.load(other).policy if other else cfg.policy
    store = open_read_only(cfg.controller.database)
    wall, cpu = time.monotonic(), time.process_time()
    try:
        with store.read() as s:
            result = engine.run(s, start, replayed)
    finally:
        store.close()
    took = {"seconds": time.monotonic() - wall, "cpu_seconds": time.process_time() - cpu}
    if as_json:
        emit_json(_as_json(result, other, took))
        return
    _print(result, took)


def _duration(text: str) -> timedelta:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms])\s*", text)
    if found is None:
        raise click.BadParameter(f"{text!r}: a number and d, h, m or s (30d)", param_hint="--since")
    return timedelta(**{_UNITS[found[2]]: float(found[1])})


def _as_json(result: engine.Result, other: str | None, took: dict[str, float]) -> dict[str, Any]:
    figures = {k: v for k, v in asdict(result).items() if k != "differences"}
    return {
        **figures,
        "since": result.since.isoformat(),
        "config": other,
        "kept_in_service": result.kept_in_service,
        **{k: round(v, 3) for k, v in took.items()},
        "differences": [
            {**asdict(d), "at": d.at.isoformat(), "changes": list(d.changes)}
            for d in result.differences
        ],
    }


def _print(result: engine.Result, took: dict[str, float]) -> None:
    table(
        f"replayed since {when(result.since)}: {len(result.differences)} difference(s)",
        ["node", "incident", "began", "changes", "fault", "stored", "replayed", "jobs"],
        [
            [
                d.node,
                f"#{d.incident}" if d.incident is not None else "-",
                when(d.at),
                ", ".join(d.changes),
                f"{d.category}: {d.fault}",
                d.stored.text(),
                d.replayed.text(),
                ",".join(map(str, d.jobs)) or "-",
            ]
            for d in result.differences
        ],
    )
    kept = ", ".join(result.kept_in_service) or "none"
    rate = result.reports / took["seconds"] if took["seconds"] > 0 else 0.0
    click.echo(
        f"{result.episodes} episode(s): {result.drained_stored} drained by hpresil, "
        f"{result.drained_replayed} by the replay; kept in service: {kept}; "
        f"breakers tripped by the replay: {result.breakers_tripped}"
    )
    click.echo(
        f"{result.reports} report(s) replayed ({result.judged} with a fault, "
        f"{result.unreadable} unreadable) in {took['seconds']:.2f} s ({rate:.0f} reports/s)"
    )


COMMANDS = [policy]
