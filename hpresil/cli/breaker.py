"""``hpresil breaker status|reset``: the breakers that hold back a category's drains."""

from __future__ import annotations

import click

from hpresil.cli.output import emit_json, json_option, styled, table
from hpresil.client import ControllerClient
from hpresil.config import Config
from hpresil.vocab import Category


@click.group()
def breaker() -> None:
    """Breakers: a failure category seen on too many nodes at once ([policy.limits])."""


@breaker.command()
@click.option("--all", "show_all", is_flag=True, help="Reset ones too, not only tripped.")
@json_option
@click.pass_obj
def status(cfg: Config, show_all: bool, as_json: bool) -> None:
    """Tripped breakers: the category, since when, on which nodes, drains held back."""
    with ControllerClient.from_config(cfg) as client:
        rows = client.breakers(tripped_only=not show_all)
    if as_json:
        emit_json(rows)
        return
    table(
        "breakers",
        ["category", "state", "tripped", "nodes", "held back", "why"],
        [
            [
                b.category.value,
                styled("tripped", "bold red") if b.reset_at is None else f"reset by {b.reset_by}",
                b.tripped_at.isoformat(timespec="seconds"),
                ",".join(b.nodes),
                str(b.held_back),
                b.why,
            ]
            for b in rows
        ],
    )


@breaker.command()
@click.argument("category", type=click.Choice([c.value for c in Category]))
@click.pass_obj
def reset(cfg: Config, category: str) -> None:
    """Reset CATEGORY's breaker: its drains are done again (operators only)."""
    with ControllerClient.from_config(cfg) as client:
        view = client.reset_breaker(category)
    click.echo(f"{category}: breaker reset ({view.held_back} drains were held back)")


COMMANDS = [breaker]
