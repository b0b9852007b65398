"""The heartbeats' lane: ``POST /v1/reports`` of a quiet heartbeat, answered without
the web framework's routing, its dependencies and a worker thread per request.

Nearly every request a fleet sends is a heartbeat from a healthy node: the state's
digest, no faults. This ASGI middleware sits inside :class:`CallerGate` (the caller is
settled and the body read and checked against its signature) and takes such a
heartbeat through :class:`~hpresil.controller.group_commit.GroupCommit`: the heartbeats
that arrive together are taken in one transaction
(:meth:`~hpresil.controller.ingest.Ingest.heartbeats`, ``Services.heartbeats``).

It answers only what the route would have answered, 200 and the acknowledgement, and
only after the commit. Anything else goes on to the route, body and all, and is
answered there as before: a body that is not a valid report, a heartbeat with faults
or jobs it cannot take, another node's report, a time ahead of the controller's clock,
a node not (yet) in the list of Slurm's, a node with an open incident, a commit that
failed (the route answers its 503), too many waiting. So the rules and the errors stay
in one place.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpresil.api import ReportAck
from hpresil.controller import heartbeat
from hpresil.controller.callers import Caller, replayed
from hpresil.controller.services import Services
from hpresil.vocab import Report

PATH = "/v1/reports"
_HEADERS = [(b"content-type", b"application/json")]


class HeartbeatLane:
    def __init__(self, app: ASGIApp, *, services: Services) -> None:
        self.app = app
        self.svc = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        first = await receive()  # the gate's replay: the whole body in one message
        ack = await self._taken(scope, first)
        if ack is None:
            await self.app(scope, replayed(first, receive), send)
            return
        body = ack.model_dump_json().encode()
        length = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS + length})
        await send({"type": "http.response.body", "body": body})

    async def _taken(self, scope: Scope, first: Message) -> ReportAck | None:
        """The heartbeat's answer, committed; None: the route takes the request."""
        who = scope.get("state", {}).get("caller")
        if not isinstance(who, Caller) or who.kind != "node" or first.get("more_body"):
            return None
        try:
            report = Report.model_validate_json(first.get("body", b""))
        except ValidationError:
            return None
        now = self.svc.clock()
        if not self._for_lane(report, who, now):
            return None
        ack = await self.svc.heartbeats(report)
        if ack is not None:
            self.svc.skew.observe(report.node, report.sent_at, now)
        return ack

    def _for_lane(self, report: Report, who: Caller, now: datetime) -> bool:
        return (
            heartbeat.quiet(report)
            and report.node == who.name
            and report.sent_at <= now + self.svc.max_skew
            and self.svc.ingest.knows(report.node)
            and not self.svc.ingest.offers.outstanding(report.node)  # its answer has commands
        )
