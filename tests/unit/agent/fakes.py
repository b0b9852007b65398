"""Test doubles for the agent: a controller that records what it is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable

from hpresil.api import NodeCommand, ReportAck
from hpresil.errors import ControllerUnavailable, RejectedByController
from hpresil.vocab import Report


class FakeController:
    """``post_report`` like ControllerClient: acks, duplicates, outages, refusals."""

    def __init__(self) -> None:
        self.up = True
        self.refuse: Callable[[Report], bool] = lambda r: False
        self.lose_acks = 0  # acknowledge this many deliveries, then "lose" the answer
        self.stored: dict[str, Report] = {}  # report_id -> report, as a controller keeps them
        self.received: list[Report] = []  # every delivery, duplicates included
        self.commands: list[NodeCommand] = []  # given in every answer, as the controller does
        self.arrived = threading.Condition()

    def post_report(self, report: Report) -> ReportAck:
        if not self.up:
            raise ControllerUnavailable("controller http://fake unreachable: connection refused")
        if self.refuse(report):
            raise RejectedByController(422, "results.0.status: bad value")
        duplicate = report.report_id in self.stored
        self.stored.setdefault(report.report_id, report)
        with self.arrived:
            self.received.append(report)
            self.arrived.notify_all()
        if self.lose_acks > 0:
            self.lose_acks -= 1
            raise ControllerUnavailable("controller http://fake: read timed out")
        return ReportAck(accepted=not duplicate, duplicate=duplicate, commands=self.commands)

    def wait_for(self, predicate: Callable[[Report], bool], timeout: float) -> Report | None:
        with self.arrived:
            found: list[Report] = []

            def ready() -> bool:
                found[:] = [r for r in self.received if predicate(r)]
                return bool(found)

            self.arrived.wait_for(ready, timeout)
            return found[0] if found else None
