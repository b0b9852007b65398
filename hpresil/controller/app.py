"""The controller's HTTP API (see :mod:`hpresil.api` for the contract).

Thin: :class:`CallerGate` settles who calls (the cluster token, a node's signed
request or a person's MUNGE credential: :mod:`hpresil.controller.callers`), each route
calls one service (:class:`Ingest`, :class:`Operator`, :class:`Views`) and returns its
view. Every error answers ``{"detail": "<one line>"}``: 400 body not UTF-8, 401 bad
token, node signature or MUNGE credential, 403 not for a node's key or a person who is
not an operator, 404 unknown node or incident, 409 against hpresil's rules, 413 body
over 1 MiB, 422 malformed request, 502 Slurm failed, 503 database busy or unavailable
or munged not answering (the database's errors: :mod:`hpresil.controller.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpresil import __version__
from hpresil.adapters.slurm import Slurm
from hpresil.api import (
    BreakerView,
    BurninMedianView,
    DrainAnswer,
    DrainRequest,
    ErrorDetail,
    HoldRequest,
    HoldView,
    IncidentView,
    JobView,
    NodeFilter,
    NodeView,
    ReportAck,
    ResumeAnswer,
    SharedFaultView,
)
from hpresil.config import Config
from hpresil.controller import node_list, routes_stats
from hpresil.controller.breakers import Breakers
from hpresil.controller.callers import CallerGate, Who, caller
from hpresil.controller.errors import Conflict, NotFound, add_database_handlers, check_database
from hpresil.controller.fleet import Fleet
from hpresil.controller.group_commit import GroupCommit
from hpresil.controller.ingest import Ingest
from hpresil.controller.known import KnownNodes
from hpresil.controller.lane import HeartbeatLane
from hpresil.controller.operator import Operator
from hpresil.controller.people import People
from hpresil.controller.services import Services
from hpresil.controller.skew import SkewWatch
from hpresil.controller.topology import Fabric
from hpresil.controller.views import Views
from hpresil.errors import SlurmError
from hpresil.store import Clock, Store, utcnow
from hpresil.vocab import INT32_MAX, Category, Report

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20  # 1 MiB
_ERRORS = {  # what each /v1/ route may answer besides 200: {"detail": "<one line>"}
    400: "body could not be decoded (not UTF-8)",
    401: "missing or wrong bearer token, a node's bad, stale or replayed signature, or a "
    "MUNGE credential refused (invalid, expired, replayed) or made for another request",
    403: "not for a node's key (it may read, send its own reports and drain itself) or a "
    "person who is not an operator (they may read)",
    404: "unknown node, incident or job",
    409: "against hpresil's rules",
    413: f"request body over {MAX_BODY} bytes",
    422: "malformed request; the line names the field",
    502: "Slurm failed",
    503: "database busy or unavailable, or the controller's munged not answering; try again",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorDetail, "description": text} for code, text in _ERRORS.items()
}


def create_app(
    *,
    store: Store,
    slurm: Slurm,
    config: Config,
    token: str,
    clock: Clock = utcnow,
    wake: Callable[[], None] = lambda: None,
    fabric: Fabric | None = None,
) -> FastAPI:
    """The API over an open, migrated ``store``. ``wake`` nudges the remediation
    executor when a report queues an action; ``fabric``, the components nodes share
    (default: the configured racks and power domains only; the controller's service
    passes one that also reads Slurm's switches)."""
    app = FastAPI(
        title="hpresil",
        version=__version__,
        summary="GPU cluster resiliency",
        # off: hpresil sets no OpenTelemetry provider, and FastAPI's check for one looked
        # the environment up three times on every request
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    ingest = Ingest(
        store,
        config.policy,
        clock,
        wake,
        config.jobs,
        fresh_s=config.controller.stale_after_s,
        known=KnownNodes(slurm, store),
        fabric=fabric or Fabric(config.topology, config.slurm),
    )
    app.state.services = Services(
        ingest=ingest,
        operator=Operator(store, slurm, config.policy, clock),
        views=Views(store, config.controller, clock, config.jobs),
        fleet=Fleet(store),
        clock=clock,
        max_skew=timedelta(seconds=config.controller.max_clock_skew_s),
        skew=SkewWatch(config.controller.warn_clock_skew_s),
        breakers=Breakers(store, clock),
        store=store,
        heartbeats=GroupCommit(ingest.heartbeats),
    )
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    app.add_middleware(HeartbeatLane, services=app.state.services)  # inside the gate
    app.add_middleware(  # outermost: who calls, before the body is read where it can be
        CallerGate,
        token=token,
        prefix=v1.prefix + "/",
        max_skew_s=config.controller.max_clock_skew_s,
        max_body=MAX_BODY,
        clock=clock,
        people=People.from_config(config.controller),
    )
    _add_error_handlers(app)
    app.include_router(public)
    for router in (v1, routes_stats.router):  # /v1/: behind a credential
        app.include_router(router, dependencies=[Depends(caller)], responses=ERROR_RESPONSES)
    return app


# --- dependencies ---
def of_app(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def services(request: Request) -> Services:  # async: no worker thread for a lookup
    return of_app(request)


Svc = Annotated[Services, Depends(services)]

DbId = Annotated[int, Path(ge=1, le=INT32_MAX)]  # ids are INTEGER columns


# --- routes ---
public = APIRouter()
v1 = APIRouter(prefix="/v1")


@public.get("/healthz")
def healthz(request: Request) -> dict[str, bool]:
    """Answers while the API serves, on every replica; ``leader``: whether this one runs
    the executor and the reconcile loop (of the controllers on one database, one does)."""
    leads = getattr(request.app.state, "leads", None)  # set by the controller's service
    check_database(of_app(request).store)  # else 503 {"ok": false, ...}
    return {"ok": True} if leads is None else {"ok": True, "leader": bool(leads())}


@v1.post("/reports")
def post_report(report: Report, svc: Svc, who: Who) -> ReportAck:
    who.refuse_other_node(report.node)
    now = svc.clock()
    _refuse_future(report, now + svc.max_skew)
    svc.skew.observe(report.node, report.sent_at, now)
    return svc.ingest(report)


@v1.get("/nodes", response_model=list[NodeView], responses=node_list.PAGED)
def get_nodes(svc: Svc, asked: Annotated[NodeFilter, Query()]) -> Response:
    try:
        found = svc.views.nodes(node_list.NodeQuery.asked(asked))
    except node_list.BadHostList as exc:
        _refuse(("query", "nodes"), str(exc))
    body = node_list.NODE_LIST.dump_json(found.nodes)
    return Response(body, media_type="application/json", headers=found.headers())


@v1.post("/nodes/{node}/drain")
def drain_node(node: str, body: DrainRequest, svc: Svc, who: Who) -> DrainAnswer:
    return svc.operator.drain(node, body.reason, by=who.who, gate=body.gate)


@v1.post("/nodes/{node}/resume")
def resume_node(node: str, svc: Svc, who: Who) -> ResumeAnswer:
    return svc.operator.resume(node, by=who.who)


@v1.post("/nodes/{node}/hold")  # the recovery ladder leaves the node to the operator
def hold_node(node: str, body: HoldRequest, svc: Svc, who: Who) -> HoldView:
    return svc.operator.hold(node, body.why, by=who.who)


@v1.post("/nodes/{node}/release")
def release_node(node: str, svc: Svc, who: Who) -> HoldView:
    return svc.operator.release(node, by=who.who)


@v1.get("/incidents")
def get_incidents(
    svc: Svc, status: Literal["open", "resolved", "all"] = "all", node: str | None = None
) -> list[IncidentView]:
    return svc.views.incidents(status, node)


@v1.get("/incidents/{incident_id}")
def get_incident(incident_id: DbId, svc: Svc) -> IncidentView:
    return svc.views.incident(incident_id)


@v1.get("/shared-faults")
def get_shared_faults(
    svc: Svc, status: Literal["open", "resolved", "all"] = "all"
) -> list[SharedFaultView]:
    return svc.views.shared_faults(status)


@v1.get("/shared-faults/{fault_id}")
def get_shared_fault(fault_id: DbId, svc: Svc) -> SharedFaultView:
    return svc.views.shared_fault(fault_id)


@v1.get("/burnin/median")
def get_burnin_median(
    svc: Svc,
    model: str,
    dtype: Literal["bf16", "fp16", "fp32"] | None = None,
    size: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> BurninMedianView:
    return svc.fleet.burnin_median(model, dtype, size)


@v1.get("/jobs")
def get_jobs(svc: Svc, idle: bool = False, all: bool = False) -> list[JobView]:
    return svc.views.jobs(idle=idle, all_jobs=all)


@v1.get("/breakers")
def get_breakers(svc: Svc, tripped: bool = False) -> list[BreakerView]:
    return svc.breakers.list(tripped)


@v1.post("/breakers/{category}/reset")
def reset_breaker(category: Category, svc: Svc, who: Who) -> BreakerView:
    return svc.breakers.reset(category, by=who.who)


@v1.get("/jobs/{job_id}")
def get_job(job_id: DbId, svc: Svc) -> JobView:
    return svc.views.job(job_id)


# --- times the controller's clock judges ---
# A time ahead of the controller's clock by more than the allowed skew is refused, not
# clamped: it comes from an agent clock that is wrong for every time it stamps, and a
# clamped time would be stored as if true. The refusal names the field; the agent sets
# the report aside with that reason, and the node turns stale, which people see.
def _refuse_future(report: Report, latest: datetime) -> None:
    if report.sent_at > latest:
        _refuse(("body", "sent_at"), _ahead(latest))
    for i, result in enumerate(report.results):
        if result.observed_at > latest:
            _refuse(("body", "results", i, "observed_at"), _ahead(latest))


def _ahead(latest: datetime) -> str:
    return f"more than the allowed clock skew ahead of the controller ({latest.isoformat()})"


def _refuse(loc: tuple[str | int, ...], msg: str) -> None:
    raise RequestValidationError([{"loc": loc, "msg": msg, "type": "value_error"}])


# --- errors: one line each ---
def one_line(errors: Sequence[Any]) -> str:
    """``results.0.status: Input should be 'ok', …`` for the first error, and a count."""
    if not errors:
        return "invalid request"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        text = f"body is not valid JSON: {first.get('ctx', {}).get('error', 'decode error')}"
    else:
        where = ".".join(loc[1:] if loc[:1] == ["body"] and len(loc) > 1 else loc)
        text = f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"{text}{more}".split())


def _detail(status: int, text: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(text.split())}, status_code=status)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _detail(422, one_line(exc.errors()))


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return _detail(404, str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return _detail(409, str(exc))


async def _slurm_failed(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: slurm failed: %s", request.method, request.url.path, exc)
    return _detail(502, f"slurm failed: {exc}")


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _detail(500, f"internal error ({type(exc).__name__}); see the controller log")


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(SlurmError, _slurm_failed)
    add_database_handlers(app)
    app.add_exception_handler(Exception, _bug)


# --- request size ---
class BodyLimit:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length when
    given and by counting otherwise, before anything is parsed or stored."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _content_length(scope) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self._text())
            return message

        await self.app(scope, counted, send)

    def _text(self) -> str:
        return f"request body over {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _detail(413, self._text())(scope, receive, send)


def _content_length(scope: Scope) -> int:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
