"""The API's statistics from the incident ledger: ``GET /v1/stats/mttf`` (mean time to
failure and to repair: :mod:`hpresil.controller.mttf`) and ``GET /v1/stats/mttr``
(time to recovery per rung of the recovery ladder: :mod:`hpresil.controller.mttr`).

Read-only routes: any caller may read them (:mod:`hpresil.controller.callers`).
:func:`hpresil.controller.app.create_app` includes :data:`router` as it does its
other ``/v1/`` routes, behind the same credential and with the same error answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from hpresil.api import MttfView, MttrView
from hpresil.controller import mttr
from hpresil.controller.services import Services
from hpresil.vocab import EARLIEST

router = APIRouter(prefix="/v1")


async def _services(request: Request) -> Services:  # as the app's: no thread for a lookup
    found: Services = request.app.state.services
    return found


Svc = Annotated[Services, Depends(_services)]


@router.get("/stats/mttf", response_model=MttfView)
def get_mttf(
    svc: Svc, by: Literal["all", "node", "category"] = "all", since: datetime | None = None
) -> Response:
    if since is not None:
        since = _since_in_range(since, svc.clock())
    return Response(svc.views.mttf(by, since).model_dump_json(), media_type="application/json")


@router.get("/stats/mttr")
def get_mttr(svc: Svc, since: datetime | None = None) -> MttrView:
    """Incidents detected since ``since`` (default: 30 days before now)."""
    now = svc.clock()
    start = _since_in_range(since, now) if since is not None else None
    return mttr.from_ledger(svc.store, now=now, since=start)


def _since_in_range(since: datetime, now: datetime) -> datetime:
    """``since`` as aware UTC (naive is UTC), between 2000 and the controller's now."""
    aware = since if since.tzinfo else since.replace(tzinfo=UTC)
    if not EARLIEST <= aware <= now:  # compared before converting: year 1 +01:00 overflows
        msg = "must be between 2000-01-01T00:00:00Z and now"
        raise RequestValidationError(
            [{"loc": ("query", "since"), "msg": msg, "type": "value_error"}]
        )
    return aware.astimezone(UTC)
