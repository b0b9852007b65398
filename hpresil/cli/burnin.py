"""``hpresil burnin``: stress this node's GPUs now and judge the figures.

Runs locally; when the controller is configured (its token file is readable) and
answers, the fleet medians are fetched first and the results are sent as an
ordinary report, so they are stored, and acted on, like any check's. Exit status: 0
healthy, 1 unhealthy (something failed), 2 could not check (nothing was measured,
or something could not be, and nothing failed).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from hpresil import __version__
from hpresil.adapters import proc
from hpresil.adapters.gpu import open_backend
from hpresil.burnin.gpulib import open_library
from hpresil.burnin.names import BUSBW_GBPS, MEMBW_GBPS, TFLOPS
from hpresil.burnin.run import FleetMedians, LibraryLoader, Which, run_burnin
from hpresil.burnin.verdict import VERDICTS, verdict
from hpresil.cli.output import emit_json, json_option, status_text, table
from hpresil.client import ControllerClient
from hpresil.clock import utcnow
from hpresil.config import Config
from hpresil.config.burnin import BurninConfig
from hpresil.errors import HpresilError
from hpresil.vocab import CheckResult, GpuIdentity, Report
from hpresil.vocab.actions import DrainOutcome


@click.command()
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds of timed GEMMs per GPU (default: burnin.duration_s, 30).",
)
@click.option(
    "--size",
    type=click.IntRange(16, 65536),
    help="N of the N x N GEMM (default: burnin.matmul_size, 8192).",
)
@click.option("--no-nccl", is_flag=True, help="Skip nccl-tests all_reduce_perf.")
@click.option("--no-gpu-burn", is_flag=True, help="Skip gpu_burn.")
@click.option(
    "--offline", is_flag=True, help="Do not contact the controller (no fleet median, no report)."
)
@click.option(
    "--gate",
    metavar="NODE",
    help="Instead, from anywhere: send NODE through the burn-in gate (drained, burnt in "
    "by its agent, back in service only if the burn-in passes).",
)
@click.option("--why", default="burn-in before service", show_default=True, help="With --gate.")
@json_option
@click.pass_obj
def burnin(
    cfg: Config,
    duration_s: float | None,
    size: int | None,
    no_nccl: bool,
    no_gpu_burn: bool,
    offline: bool,
    gate: str | None,
    why: str,
    as_json: bool,
) -> None:
    """Burn in this node's GPUs: a GEMM and a memory copy per GPU, then nccl-tests
    all_reduce_perf and gpu_burn when installed. Exit 0 healthy, 1 unhealthy, 2 could
    not check. With --gate NODE: ask the controller to burn NODE in before it serves."""
    if gate is not None:
        _gate(cfg, gate, why, as_json)
        return
    changes: dict[str, Any] = {}
    if duration_s is not None:
        changes["duration_s"] = duration_s
    if size is not None:
        changes["matmul_size"] = size
    if no_nccl:
        changes["nccl"] = False
    if no_gpu_burn:
        changes["gpu_burn"] = False
    settings = base_settings(cfg).model_copy(update=changes)
    code = execute(cfg, settings, as_json=as_json, offline=offline)
    click.get_current_context().exit(code)


def base_settings(cfg: Config) -> BurninConfig:
    """The burn-in settings from the configuration file (``[burnin]``)."""
    return cfg.burnin


def execute(
    cfg: Config,
    settings: BurninConfig,
    *,
    as_json: bool = False,
    offline: bool = False,
    gpus: Sequence[GpuIdentity] | None = None,
    library: LibraryLoader = open_library,
    which: Which = shutil.which,
    runner: Callable[..., proc.Completed] = proc.run,
    clock: Callable[[], datetime] = utcnow,
    dcgm: Callable[[Config, str], list[CheckResult]] | None = None,
) -> int:
    """The command's work, with the host-facing parts as parameters. ``gpus``: the
    node's GPUs (default: ask the configured GPU backend). Answers the exit status."""
    node = cfg.node_name()
    found = list(gpus) if gpus is not None else local_gpus(cfg, node)
    client = None if offline else _client(cfg)
    median = _medians(client, found, settings) if client is not None else None
    if client is not None and median is None:
        client = None  # unreachable: do not wait for it a second time
    results = run_burnin(
        settings,
        found,
        median,
        progress=not as_json,
        library=library,
        which=which,
        runner=runner,
        clock=clock,
    )
    from hpresil.localcheck import burnin_dcgm

    results = [*results, *(dcgm or burnin_dcgm)(cfg, node)]
    reported = client is not None and _report(client, node, found, results, clock)
    code = exit_code(results)
    if as_json:
        emit_json(
            {
                "node": node,
                "verdict": VERDICTS[code],
                "exit_code": code,
                "reported": reported,
                "results": [r.model_dump(mode="json") for r in results],
            }
        )
    else:
        _show(node, results, code)
    return code


def exit_code(results: Sequence[CheckResult]) -> int:
    return verdict(results)


def local_gpus(cfg: Config, node: str) -> list[GpuIdentity]:
    """The node's GPUs as the configured backend (NVML) names them; none if it cannot."""
    try:
        backend = open_backend(cfg.agent.gpu)
    except HpresilError as exc:
        _note(f"GPU identities unknown ({exc}); using the CUDA library's")
        return []
    try:
        return [sample.identity for sample in backend.devices()]
    except HpresilError as exc:
        _note(f"GPU identities unknown ({exc}); using the CUDA library's")
        return []
    finally:
        backend.close()


def _client(cfg: Config) -> ControllerClient | None:
    """With the token or this node's key, never MUNGE: results are a node's reports."""
    try:
        return ControllerClient.from_config(cfg, people=False)
    except HpresilError as exc:
        _note(f"controller not configured ({exc}): no fleet median, results not reported")
        return None


def _medians(
    client: ControllerClient, gpus: Sequence[GpuIdentity], settings: BurninConfig
) -> FleetMedians | None:
    from hpresil.localcheck import fleet_medians

    return fleet_medians(client, gpus, settings, lambda why: _note(f"{why}; results not reported"))


def _report(
    client: ControllerClient,
    node: str,
    gpus: Sequence[GpuIdentity],
    results: Sequence[CheckResult],
    clock: Callable[[], datetime],
) -> bool:
    report = Report(
        report_id=uuid.uuid4().hex,
        node=node,
        seq=0,  # not from the agent's spool: the controller keys on report_id
        sent_at=clock(),
        agent_version=__version__,
        gpus=tuple(gpus),
        results=tuple(results),
    )
    try:
        ack = client.post_report(report)
    except HpresilError as exc:
        _note(f"results not reported: {exc}")
        return False
    if ack.incidents:
        _note(f"reported; incident {', '.join(f'#{i}' for i in ack.incidents)}")
    return True


def _show(node: str, results: Sequence[CheckResult], code: int) -> None:
    table(
        f"burn-in on {node}: {VERDICTS[code]}",
        ["check", "gpu", "status", "figure", "summary"],
        [
            [
                r.check,
                "-" if r.gpu is None else str(r.gpu.index),
                status_text(r.status),
                figure(r),
                r.summary,
            ]
            for r in results
        ],
    )


def figure(r: CheckResult) -> str:
    """The headline number of a result, with its unit."""
    e = r.evidence
    for key, unit, digits in (
        (TFLOPS, "TFLOPS", 1),
        (MEMBW_GBPS, "GB/s", 0),
        (BUSBW_GBPS, "GB/s", 1),
    ):
        if isinstance(e.get(key), int | float):
            return f"{e[key]:,.{digits}f} {unit}"
    return str(e.get("verdict", "-"))


def _gate(cfg: Config, node: str, why: str, as_json: bool) -> None:
    with ControllerClient.from_config(cfg) as client:
        answer = client.drain(node, why, gate=True)
    if as_json:
        emit_json(answer)
        return
    if answer.outcome is DrainOutcome.FOREIGN:
        raise click.ClickException(f"{node} is drained by someone else: not gated")
    click.echo(
        f"{node}: {answer.outcome.value}, incident #{answer.incident}: its agent burns it in "
        "once no job runs there; back in service only if the burn-in passes "
        f"(hpresil incidents {answer.incident})"
    )


def _note(text: str) -> None:
    click.echo(f"burnin: {text}", err=True)


COMMANDS = [burnin]
