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
@click.option("--ecc-corrected", type=click.IntRange(0), help="Volatile corrected ECC count.")
@click.option("--row-remap-pending/--no-row-remap-pending", default=None, help="Remap pending.")
@click.option("--row-remap-failure/--no-row-remap-failure", default=None, help="Remap failed.")
@click.option("--temperature", type=click.IntRange(0, 150), help="GPU temperature, deg C.")
@click.option("--pcie-width", type=click.IntRange(1, 32), help="Current PCIe link width.")
@click.option("--nvlink-down", type=click.IntRange(0, 17), multiple=True, help="A link down.")
@click.option("--clock-events", type=int, help="Clock event bitmask (0x8 HW slowdown ...).")
@click.option("--recovery-action", type=click.IntRange(0, 7), help="NVML recovery action.")
@click.option("--util", type=click.IntRange(0, 100), help="GPU (SM) utilisation, percent.")
@click.pass_obj
def gpu(
    cfg: Config,
    gpu_index: int,
    node: str | None,
    lost: bool | None,
    ecc_uncorrected: int | None,
    ecc_corrected: int | None,
    row_remap_pending: bool | None,
    row_remap_failure: bool | None,
    temperature: int | None,
    pcie_width: int | None,
    nvlink_down: tuple[int, ...],
    clock_events: int | None,
    recovery_action: int | None,
    util: int | None,
) -> None:
    """Change a simulated GPU's state (simulated backend only)."""
    from hpresil.agent.inject import inject_gpu

    changes = {
        "lost": lost,
        "ecc_uncorrected": ecc_uncorrected,
        "ecc_corrected": ecc_corrected,
        "row_remap_pending": row_remap_pending,
        "row_remap_failure": row_remap_failure,
        "temperature_c": temperature,
        "pcie_width": pcie_width,
        "nvlink_down": list(nvlink_down) if nvlink_down else None,
        "clock_event_reasons": clock_events,
        "recovery_action": recovery_action,
        "utilization_pct": util,
    }
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise click.UsageError("say what to change, e.g. --lost or --row-remap-failure")
    name = cfg.node_name(node)
    inject_gpu(cfg, name, gpu_index, **given)  # type: ignore[arg-type]
    click.echo(f"gpu {gpu_index} on {name}: " + ", ".join(f"{k}={v}" for k, v in given.items()))


@inject.command()
@click.option("--port", required=True, help="Device/port, e.g. mlx5_3/1.")
@click.option("--node", help="Target node (default: this node).")
@click.option("--down/--up", default=True, help="Take the port down (default) or back up.")
@click.pass_obj
def ib(cfg: Config, port: str, node: str | None, down: bool) -> None:
    """Take a simulated InfiniBand port down or up (lab sysfs trees only, never /sys)."""
    from pathlib import Path

    from hpresil.config import expand
    from hpresil.host.simulated_ib import set_port

    name = cfg.node_name(node)
    root = Path(expand(str(cfg.checks.ib.sysfs_root), name))
    set_port(root, port, up=not down)
    click.echo(f"{port} on {name} {'down' if down else 'up'}")


COMMANDS = [inject]
