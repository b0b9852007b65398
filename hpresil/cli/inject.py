"""``hpresil inject``: game-day fault injection on a node.

``inject xid`` writes a real-format ``NVRM: Xid`` line into the node's configured
kernel-log source (on a real node that is ``/dev/kmsg``), so the whole detection path
runs as it would for a real fault. GPU state faults (ECC, row remapping, NVLink, a
lost GPU) and InfiniBand ports going down are lab tooling, not product:
``scripts/lab.py inject-gpu`` writes the state of the lab's NVML double and
``scripts/lab.py inject-ib`` its sysfs trees.
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


COMMANDS = [inject]
