"""``hpresil jobs``: the jobs hpresil protects, what they lost, and idle GPUs.

``hpresil jobs`` lists protected jobs (those that named a checkpoint directory) with
their restarts against the budget, the newest complete checkpoint, the work an
interruption now would lose (time since that checkpoint) and the mean lost per past
interruption. ``--idle`` lists jobs whose allocated GPUs stayed below the threshold
for the idle window (``[jobs.idle]``), protected or not; ``JOB_ID`` shows one job
with its interruptions.
"""

from __future__ import annotations

import click

from hpresil.api import JobView
from hpresil.cli.output import age, emit_json, json_option, table, when
from hpresil.client import ControllerClient
from hpresil.config import Config


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--idle", is_flag=True, help="Only jobs whose GPUs are idle (any job).")
@click.option("--all", "all_jobs", is_flag=True, help="Every job seen, ended ones too.")
@json_option
@click.pass_obj
def jobs(cfg: Config, job_id: int | None, idle: bool, all_jobs: bool, as_json: bool) -> None:
    """List protected jobs, or show one (JOB_ID) with its interruptions."""
    with ControllerClient.from_config(cfg) as client:
        if job_id is not None:
            one = client.job(job_id)
            emit_json(one) if as_json else _show(one)
            return
        rows = client.jobs(idle=idle, all_jobs=all_jobs)
    if as_json:
        emit_json(rows)
        return
    if idle:
        _idle_table(rows, cfg)
        return
    table(
        "jobs",
        [
            "job",
            "name",
            "user",
            "status",
            "nodes",
            "restarts",
            "checkpoint",
            "step",
            "since ckpt",
            "lost/interr.",
            "progress",
        ],
        [
            [
                str(j.job_id),
                j.name,
                j.user,
                j.status,
                j.nodes or "-",
                f"{j.restarts}/{j.budget}",
                j.checkpoint or "-",
                "-" if j.checkpoint_step is None else str(j.checkpoint_step),
                age(j.since_checkpoint_s),
                age(j.mean_lost_s),
                when(j.progress_at),
            ]
            for j in rows
        ],
    )


def _idle_table(rows: list[JobView], cfg: Config) -> None:
    idle = cfg.jobs.idle
    table(
        f"jobs with GPUs below {idle.below_pct:g} % for {idle.window_s:g} s",
        ["job", "name", "user", "nodes", "gpus", "util %", "idle since"],
        [
            [
                str(j.job_id),
                j.name,
                j.user,
                j.nodes or "-",
                str(j.gpus),
                "-" if j.gpu_util_pct is None else f"{j.gpu_util_pct:.1f}",
                when(j.idle_since),
            ]
            for j in rows
        ],
    )


def _show(j: JobView) -> None:
    click.echo(f"job {j.job_id} ({j.name}, {j.user}): {j.status}, Slurm {j.state or '?'}")
    click.echo(f"  nodes: {j.nodes or '-'}   restarts: {j.restarts} of {j.budget}")
    click.echo(f"  checkpoint dir: {j.ckpt_dir or '-'}")
    click.echo(
        f"  newest checkpoint: {j.checkpoint or '-'} (step {j.checkpoint_step}, "
        f"{when(j.checkpoint_at)})"
    )
    click.echo(f"  progress: step {j.step}, {when(j.progress_at)} ({j.progress_source or '-'})")
    util = "-" if j.gpu_util_pct is None else f"{j.gpu_util_pct:.1f} %"
    click.echo(f"  GPUs: {j.gpus}, utilisation {util}, idle since {when(j.idle_since)}")
    for label, text in (("held", j.held_reason), ("blamed", j.blamed)):
        if text:
            click.echo(f"  {label}: {text}")
    if j.interruptions:
        table(
            "interruptions",
            ["stopped", "on", "cause", "resumed from", "step", "lost", "running again", "on"],
            [
                [
                    when(i.at),
                    i.node or "-",
                    i.cause,
                    i.checkpoint or "-",
                    "-" if i.checkpoint_step is None else str(i.checkpoint_step),
                    age(i.lost_s),
                    when(i.resumed_at),
                    i.resumed_node or "-",
                ]
                for i in j.interruptions
            ],
        )


COMMANDS = [jobs]
