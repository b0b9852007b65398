"""What the API's routes and the heartbeats' lane work with: one of each service per app."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hpresil.api import ReportAck
from hpresil.controller.breakers import Breakers
from hpresil.controller.fleet import Fleet
from hpresil.controller.group_commit import GroupCommit
from hpresil.controller.ingest import Ingest
from hpresil.controller.operator import Operator
from hpresil.controller.skew import SkewWatch
from hpresil.controller.views import Views
from hpresil.store import Clock, Store
from hpresil.vocab import Report


@dataclass(frozen=True)
class Services:
    ingest: Ingest
    operator: Operator
    views: Views
    fleet: Fleet
    clock: Clock
    max_skew: timedelta
    skew: SkewWatch
    breakers: Breakers
    store: Store
    heartbeats: GroupCommit[Report, ReportAck]  # the lane's (hpresil.controller.lane)
