"""``hpresil agent`` and ``hpresil controller``: the two long-running services."""

from __future__ import annotations

from pathlib import Path

import click

from hpresil.auth import NODE_NAME, node_key, read_token, write_secret, write_token
from hpresil.config import Config, expand


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
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.option("--node", help="Write this node's key (from the cluster token) instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Where the node's key goes ('-': print it; default: agent.key_file for NODE).",
)
@click.pass_obj
def token(cfg: Config, force: bool, node: str | None, out: Path | None) -> None:
    """Create the cluster token file (mode 0600) the controller and operators use; with
    --node, write that node's key file for its agent and Slurm hook."""
    if node is None:
        if out is not None:
            raise click.UsageError("--out goes with --node")
        path = cfg.controller.token_file
        _refuse_overwrite(path, force)
        write_token(path)
        click.echo(f"wrote {path}; the controller's and operators' credential (0600)")
        return
    if not NODE_NAME.fullmatch(node):
        raise click.UsageError(f"--node {node!r}: not a node name")
    cluster_token = read_token(cfg.controller.token_file)
    assert cluster_token is not None  # required=True
    key = node_key(cluster_token, node)
    if str(out) == "-":
        click.echo(key)
        return
    path = out or expand(cfg.agent.key_file, node)
    _refuse_overwrite(path, force)
    write_secret(path, key)
    click.echo(f"wrote {path}: {node}'s key; copy it to {node}'s agent.key_file (0600, root)")


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; use --force to replace it")


COMMANDS = [agent, controller, openapi, token]
