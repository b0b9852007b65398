"""Shared output helpers: the ``--json`` option and rich tables for people.

rich is imported only when a table is printed: the agent and JSON output never pay
for it (about 5 MiB of memory; scripts/bench/agent_footprint)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import BaseModel

from hpresil.vocab import Status

if TYPE_CHECKING:
    from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """Add ``--json`` (machine-readable output) to a read command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        func
    )


def emit_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, dict):
        payload = data
    else:
        payload = [item.model_dump(mode="json") for item in data]
    click.echo(json.dumps(payload, indent=2, sort_keys=False))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str | Text]]) -> None:
    """Cells are plain text (a drain reason or job name is never read as rich markup);
    pass a :class:`Text` (see :func:`styled`) to style one."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*(c if isinstance(c, Text) else Text(c) for c in row))
    Console().print(t)


_STATUS_STYLE = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.UNKNOWN: "magenta",
    Status.UNSUPPORTED: "dim",
}


def styled(text: str, style: str) -> Text:
    """A table cell with a rich style."""
    from rich.text import Text

    return Text(text, style=style)


def status_text(status: Status) -> Text:
    """A check status, coloured for people."""
    return styled(status.value, _STATUS_STYLE[status])


def when(ts: datetime | None) -> str:
    if ts is None:
        return "-"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"
