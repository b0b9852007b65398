"""``hpresil agent`` and ``hpresil controller``: the two long-running services."""

from __future__ import annotations

import click

from hpresil.auth import write_token
from hpresil.config import Config


@click.command()
@click.option("--node", help="This node's Slurm name (default: agent.node, then the host name).")
@click.pass_obj
def agent(cfg: Config, node: str | None) -> None:
    """Run the node agent: health checks, kernel-log watch, reports to the controller."""
    from hpresil.agent.service import run_agent

    run_agent(cfg, cfg.node_name(node))


@click.command()
@click.pass_obj
def controller(cfg: Config) -> None:
    """Run the controller: API, incident ledger, drains and requeues through Slurm."""
    from hpresil.controller.service import run_controller

    run_controller(cfg)


@click.command()
@click.pass_obj
def openapi(cfg: Config) -> None:
    """Print the controller API's OpenAPI document (JSON), for writing clients."""
    import json

    from hpresil.adapters.slurm import Slurm
    from hpresil.adapters.slurm.cli import CliBackend
    from hpresil.controller.app import create_app
    from hpresil.store import Store

    store = Store.open("sqlite://")  # never queried: the document needs no data
    app = create_app(store=store, slurm=Slurm(CliBackend()), config=cfg, token="-" * 16)
    click.echo(json.dumps(app.openapi(), indent=2, sort_keys=True))
    store.close()


@click.command()
@click.option("--force", is_flag=True, help="Replace an existing token.")
@click.pass_obj
def token(cfg: Config, force: bool) -> None:
    """Create the shared bearer token file (mode 0600) agents and the CLI use."""
    path = cfg.controller.token_file
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; use --force to replace it")
    write_token(path)
    click.echo(f"wrote {path}; copy it to every node with the same mode (0600, root)")


COMMANDS = [agent, controller, openapi, token]
