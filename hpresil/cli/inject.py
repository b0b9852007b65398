"""``hpresil inject``: game-day fault injection on a node.

``inject xid`` writes a real-format ``NVRM: Xid`` line into the node's configured
kernel-log source (on a real node that is ``/dev/kmsg``), so the whole detection path
runs as it would for a real fault. ``inject gpu`` changes GPU state and needs the
simulated GPU backend.
"""

from __future__ import annotations

import click

from hpresil.config import Config


@click.group()
def inject() -> None:
    """Inject faults for game days and the lab."""


@inject.command()
@click.argument("xid", type=click.IntRange(0, 10_000))
@click.option("--gpu", "gpu_index", type=click.IntRange(0, 63), required=True)
@click.option("--node", help="Target node (default: this node).")
@click.option("--pid", type=int, help="Process id to name in the line.")
@click.option("--process", help="Process name to name in the line.")
@click.option("--message", help="Message text (default: the catalog's text for XID).")
@click.pass_obj
def xid(
    cfg: Config,
    xid: int,
    gpu_index: int,
    node: str | None,
    pid: int | None,
    process: str | None,
    message: str | None,
) -> None:
    """Write an NVIDIA XID line for GPU --gpu into the kernel log."""
    from hpresil.agent.inject import inject_xid

    line = inject_xid(cfg, cfg.node_name(node), xid, gpu_index, pid, process, message)
    click.echo(line)


@inject.command()
@click.option("--gpu", "gpu_index", type=click.IntRange(0, 63), required=True)
@click.option("--node", help="Target node (default: this node).")
@click.option("--lost/--found", default=None, help="GPU fallen off the bus (or back).")
@click.option("--ecc-uncorrected", type=click.IntRange(0), help="Volatile uncorrected ECC count.")
@click.pass_obj
def gpu(
    cfg: Config, gpu_index: int, node: str | None, lost: bool | None, ecc_uncorrected: int | None
) -> None:
    """Change a simulated GPU's state (simulated backend only)."""
    from hpresil.agent.inject import inject_gpu

    if lost is None and ecc_uncorrected is None:
        raise click.UsageError("say what to change: --lost/--found or --ecc-uncorrected N")
    inject_gpu(cfg, cfg.node_name(node), gpu_index, lost=lost, ecc_uncorrected=ecc_uncorrected)
    click.echo(f"gpu {gpu_index} on {cfg.node_name(node)} updated")


COMMANDS = [inject]
