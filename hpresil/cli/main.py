"""Root command and the one error boundary.

Known errors (:class:`~hpresil.errors.HpresilError`) print ``hpresil: <message>`` and
exit with their code (2 for configuration and usage); anything else is a bug and
prints a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from hpresil import __version__, config
from hpresil.cli import (
    breaker,
    burnin,
    check,
    checkpoint,
    daemons,
    dcgm,
    incidents,
    inject,
    jobs,
    nodes,
    policy,
    stats,
    xid,
)
from hpresil.errors import HpresilError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hpresil")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Configuration file (default: $HPRESIL_CONFIG, then /etc/hpresil/hpresil.toml).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Resiliency for GPU clusters that run Slurm."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx.obj = config.load(config_path)


for module in (
    daemons,
    nodes,
    incidents,
    jobs,
    stats,
    breaker,
    policy,
    inject,
    check,
    xid,
    dcgm,
    burnin,
    checkpoint,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="hpresil", standalone_mode=False)
    except HpresilError as exc:
        click.echo(f"hpresil: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("hpresil: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
