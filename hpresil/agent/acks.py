"""The answer to a report, as the agent acts on it: the whole state asked for again,
commands to run (:mod:`hpresil.agent.commands`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from hpresil.agent.spool import ReportSink
from hpresil.api import NodeCommand
from hpresil.vocab import Report

log = logging.getLogger(__name__)


class Acknowledged:
    """The agent's sink: delivers through ``client``, calls ``wanted`` when an
    acknowledgement asks for the whole state and gives ``commands`` what it asks done."""

    def __init__(
        self,
        client: ReportSink,
        wanted: Callable[[], None],
        commands: Callable[[Sequence[NodeCommand]], None],
    ) -> None:
        self._client, self._wanted, self._commands = client, wanted, commands

    def post_report(self, report: Report) -> object:
        ack = self._client.post_report(report)
        if getattr(ack, "send_state", False) is True:
            log.info("the controller asks for this node's state: sent with the next tick")
            self._wanted()
        given = getattr(ack, "commands", None)
        if given:
            self._commands(given)
        return ack
