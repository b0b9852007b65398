"""``hpresil xid``: NVIDIA XID and NVSwitch SXid lines in a kernel log.

``xid parse`` reads a saved kernel log (dmesg, dmesg -T, journalctl -k, syslog,
/dev/kmsg records) or standard input and prints every XID, SXid and GPU loss in it
with what hpresil's table does about it. Lines are read the way the agent reads them
(:class:`~hpresil.kernlog.parse.LineParser`): the "fallen off the bus" companion of
an ``Xid ...: 79`` line (before or after it) and the detail lines after an SXid belong
to their fault and are not printed again. Severity and action are the first response with the site's
``[xid]`` overrides applied; the recurrence escalation needs the agent's history
(timestamps the log does not reliably carry) and is not applied here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import IO, Literal

import click
from pydantic import BaseModel, ConfigDict

from hpresil.checks.xid import XidHistory, judge, status_for
from hpresil.cli.output import emit_json, json_option, table
from hpresil.clock import utcnow
from hpresil.config.xid import XidPolicyConfig
from hpresil.kernlog.parse import LineParser
from hpresil.vocab import Action, Category, Status, XidEvent


class XidRow(BaseModel):
    """One fault found in the log, as ``--json`` prints it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["xid", "sxid"]
    xid: int | None  # the XID number (None for an SXid)
    sxid: int | None  # the SXid number (None for an XID)
    pci_bus_id: str
    pid: int | None
    process: str | None
    message: str
    severity: Status
    action: Action
    category: Category
    switch: int | None
    fatal: bool | None
    gpu_instance: int | None
    compute_instance: int | None
    recovery_action: int | None
    root_xid: int | None
    gpu_uuid: str | None
    gpu_serial: str | None
    raw: str


@click.group()
def xid() -> None:
    """NVIDIA XID and NVSwitch SXid tools."""


@xid.command()
@click.argument("file", default="-", metavar="[FILE|-]")
@json_option
@click.pass_obj
def parse(obj: object, file: str, as_json: bool) -> None:
    """List the XIDs, SXids and GPU losses in a kernel log (FILE, or - for stdin)."""
    policy, history = _first_response(_policy(obj)), XidHistory()
    try:
        with _open(file) as fh:
            rows = [_row(event, policy, history) for event in _events(fh)]
    except OSError as exc:
        raise click.FileError(file, hint=exc.strerror or str(exc)) from None
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no XID, SXid or GPU-lost line found")
    else:
        _table(rows)


def _open(file: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    if file == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    return open(file, "rb")


def _events(fh: IO[bytes]) -> Iterator[XidEvent]:
    parser, now = LineParser(), utcnow()
    for raw in fh:
        event = parser.feed(raw.decode(errors="replace"), now)
        if event is not None:
            yield event


def _policy(obj: object) -> XidPolicyConfig:
    """The site's ``[xid]`` section when the configuration has one, else the table's."""
    policy = getattr(obj, "xid", None)
    return policy if isinstance(policy, XidPolicyConfig) else XidPolicyConfig()


def _row(event: XidEvent, policy: XidPolicyConfig, history: XidHistory) -> XidRow:
    verdict = judge(event, policy, history)
    fields = event.model_dump(exclude={"xid", "seen_at"})
    return XidRow(
        **fields,
        xid=None if event.kind == "sxid" else event.xid,
        sxid=event.sxid,
        severity=status_for(verdict.action),
        action=verdict.action,
        category=verdict.category,
    )


def _first_response(policy: XidPolicyConfig) -> XidPolicyConfig:
    """``policy`` without its recurrence escalations."""
    strip = {"count": None, "window_s": None, "then": None}
    return policy.model_copy(
        update={
            "overrides": {k: o.model_copy(update=strip) for k, o in policy.overrides.items()},
            "sxid_overrides": {
                k: o.model_copy(update=strip) for k, o in policy.sxid_overrides.items()
            },
        }
    )


def _table(rows: list[XidRow]) -> None:
    table(
        "XID / SXid events",
        ["xid", "pci", "pid", "process", "severity", "action", "category", "message"],
        [
            [
                f"SXid {r.sxid} (nvswitch{r.switch})" if r.kind == "sxid" else str(r.xid),
                r.pci_bus_id,
                "-" if r.pid is None else str(r.pid),
                r.process or "-",
                r.severity.value,
                r.action.value,
                r.category.value,
                r.message,
            ]
            for r in rows
        ],
    )


COMMANDS = [xid]
