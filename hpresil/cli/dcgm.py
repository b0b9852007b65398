"""``hpresil dcgm``: read saved DCGM output (``dcgmi diag -j``, ``dcgmi health -c -j``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from hpresil.cli.output import emit_json, json_option, styled, table

if TYPE_CHECKING:
    from rich.text import Text
from hpresil.dcgm.health import parse_health
from hpresil.dcgm.model import DiagReport, HealthReport
from hpresil.dcgm.parse import documents, parse_diag
from hpresil.errors import HpresilError

_STYLE = {"fail": "bold red", "failure": "bold red", "warn": "yellow", "warning": "yellow"}


@click.group()
def dcgm() -> None:
    """Read NVIDIA DCGM output into hpresil's verdicts."""


@dcgm.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--exit-code",
    type=int,
    default=None,
    help="dcgmi's exit status, when known (205 marks an ISOLATE failure).",
)
@json_option
def parse(file: str, exit_code: int | None, as_json: bool) -> None:
    """Judge FILE, the saved output of `dcgmi diag -j` or `dcgmi health -c -j` ('-': stdin)."""
    report = read_report(_read(file), exit_code=exit_code, name=file)
    if as_json:
        emit_json(report)
    elif isinstance(report, DiagReport):
        _show_diag(report)
    else:
        _show_health(report)


def read_report(
    text: str, *, exit_code: int | None = None, name: str = "-"
) -> DiagReport | HealthReport:
    """A health report when the output is one, else a diagnostic report."""
    try:
        if any(isinstance(d.get("body"), dict) for d in documents(text)):
            return parse_health(text)
        return parse_diag(text, exit_code=exit_code)
    except HpresilError as exc:
        raise HpresilError(f"{name}: {exc}") from None


def _read(file: str) -> str:
    try:
        if file == "-":
            return sys.stdin.read()
        with open(file, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise HpresilError(f"cannot read {file}: {why}") from None


def _show_diag(r: DiagReport) -> None:
    what = f"DCGM {r.version or r.format}"
    if r.iterations:
        what += f", {r.iterations} iterations (Overall Result {r.overall_result or '?'})"
    click.echo(f"{what}: {r.overall.value.upper()}")
    click.echo(f"  failing GPUs: {', '.join(map(str, r.failing_gpus)) or '-'}")
    click.echo(f"  failing tests: {', '.join(r.failing_tests) or '-'}")
    click.echo(f"  categories: {', '.join(c.value for c in r.categories) or '-'}")
    click.echo(f"  skipped tests: {', '.join(r.skipped_tests) or '-'}")
    if r.runtime_error:
        click.echo(f"  did not complete: {r.runtime_error.strip().splitlines()[0]}")
    if r.findings:
        table(
            "findings",
            ["entity", "test", "status", "action", "category", "dcgm error", "message"],
            [
                [
                    f.entity + (f" (iter {f.iteration})" if f.iteration else ""),
                    f.test,
                    _styled(f.status.value),
                    f.action.value,
                    f.category.value,
                    _error(f.error_id, f.error_category, f.error_severity),
                    f.message,
                ]
                for f in r.findings
            ],
        )
    rows: list[list[str | Text]] = []
    for t in r.tests:
        row: list[str | Text] = [t.test_category, t.name, _styled(t.result.value)]
        rows.append([*row, str(t.iteration or "-")] if r.iterations else row)
    table(
        "tests", ["category", "test", "dcgm result"] + (["iteration"] if r.iterations else []), rows
    )


def _show_health(r: HealthReport) -> None:
    click.echo(f"DCGM health: {r.overall.upper()}")
    click.echo(f"  failing GPUs: {', '.join(map(str, r.failing_gpus)) or '-'}")
    if r.incidents:
        table(
            "incidents",
            ["entity", "system", "health", "status", "action", "category", "message"],
            [
                [
                    f"{i.entity_group} {i.entity_id}",
                    i.system,
                    _styled(i.health.lower(), i.health),
                    _styled(i.status.value),
                    i.action.value,
                    i.category.value,
                    i.message,
                ]
                for i in r.incidents
            ],
        )


def _error(error_id: int | None, category: int | None, severity: int | None) -> str:
    if error_id is None and category is None and severity is None:
        return "-"
    return f"id={_n(error_id)} cat={_n(category)} sev={_n(severity)}"


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _styled(key: str, text: str | None = None) -> Text:
    return styled(text if text is not None else key, _STYLE.get(key, ""))


COMMANDS = [dcgm]
