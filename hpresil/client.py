"""The HTTP client for the controller's API, used by the agent and the CLI.

Standard library HTTP (``http.client``, over connections kept alive:
:mod:`hpresil.connections`): a few small JSON calls need no HTTP library, and the agent
stays light (see scripts/bench/agent_footprint). The agent signs every request with its
node's key (:meth:`ControllerClient.for_node`); the CLI sends the
cluster token, else that node's key, else the person running proves who they are with
MUNGE (:meth:`from_config`).

Several controllers (``controller.url`` a list: replicas on one PostgreSQL, each serving
the API): a request goes to the one that answered last (at first, the first listed);
when that one cannot be reached (refused, reset, timed out) or answers 502, 503 or 504,
the same request goes at once to the next, each at most once, and the client stays
with the one that answered. Any other answer, a 4xx or another 5xx, is about the
request, and is not tried elsewhere. The credential is made afresh for each try: a
node's signature gets a new nonce (each replica remembers the nonces it saw in its own
memory, not in the database) and MUNGE a new credential (munged decodes each credential
once: replicas sharing a host, or a munged, would refuse the same one as replayed)."""

from __future__ import annotations

import http.client
import json as _json
import shutil
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from hpresil import api
from hpresil.adapters import munge
from hpresil.auth import (
    MUNGE_SCHEME,
    BearerToken,
    Credential,
    MungePayload,
    NodeKey,
    read_node_key,
    read_token,
)
from hpresil.config import Config, expand
from hpresil.connections import Connections
from hpresil.errors import (
    ConfigError,
    ControllerFailed,
    ControllerUnavailable,
    RejectedByController,
)
from hpresil.vocab import Report

T = TypeVar("T")

# Answers that say the controller cannot serve now, whatever the request: a gateway
# without its backend, a busy database (503), a timeout, rate limiting. Any other 5xx
# is the controller failing on this request (ControllerFailed), a 4xx refusing it.
UNAVAILABLE = frozenset({408, 429, 502, 503, 504})
# Of them, those after which the same request goes on to the next controller URL: this
# controller cannot serve now, another replica may. 408 and 429 are about this client.
FAILOVER = frozenset({502, 503, 504})


@dataclass(frozen=True)
class MungeCredential:
    """The person running, proven by this host's munged: a fresh credential for each
    request, good for that request only (:class:`~hpresil.auth.MungePayload`).
    :class:`~hpresil.adapters.munge.MungeUnavailable` (one line) when munged cannot
    make one."""

    socket: str

    def authorization(self, method: str, target: str, body: bytes) -> str:
        payload = MungePayload.of(method, target, body).text()
        return f"{MUNGE_SCHEME} {munge.encode(payload, socket=self.socket)}"


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    """How an https controller is verified: against ``controller.tls_ca`` (PEM), else
    the system's trust store; None when every URL is plain http (an http URL among
    https ones is sent plain: the context serves https only)."""
    if not any(url.startswith("https://") for url in cfg.controller.urls):
        return None
    try:
        return ssl.create_default_context(cafile=cfg.controller.tls_ca or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"controller.tls_ca {cfg.controller.tls_ca}: {exc}") from None


class _TryNext(ControllerUnavailable):
    """This controller cannot serve the request now; the next one may."""


class ControllerClient:
    def __init__(
        self,
        base_url: str | Sequence[str],
        credential: Credential,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``base_url``: one controller, or several (replicas) tried in turn (see the
        module). ``timeout``: for each try."""
        urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        if not urls:
            raise ConfigError("controller.url: no controller URL")
        self._credential = credential
        self._bases = tuple(url.rstrip("/") for url in urls)
        self._current = 0  # the one that answered last
        # tls: for an https URL, verifies the controller (default: the system's CAs)
        self._connections = Connections(timeout, tls)

    @classmethod
    def from_config(cls, cfg: Config, *, people: bool = True) -> ControllerClient:
        """With the first credential this user has: the cluster token if they can read
        it (an operator: everything); else this node's key (``agent.key_file``: reads,
        its own reports); else, with ``people`` and ``munge`` installed, MUNGE (the
        person running: reads, and writes if the controller counts them among its
        operators). With none of them: why the token file cannot be read, in one line."""
        urls, timeout = cfg.controller.urls, cfg.controller.request_timeout_s
        token_file = Path(cfg.controller.token_file)
        token = read_token(token_file, required=False)
        if token is not None:
            return cls(urls, BearerToken(token), timeout, tls_context(cfg))
        node = cfg.node_name()
        key = read_node_key(expand(cfg.agent.key_file, node), required=False)
        if key is not None:
            return cls(urls, NodeKey(node, key), timeout, tls_context(cfg))
        if people and shutil.which("munge"):
            person = MungeCredential(cfg.controller.munge_socket)
            return cls(urls, person, timeout, tls_context(cfg))
        token = read_token(token_file)  # raises the one-line reason: not found, not root
        assert token is not None  # required=True
        return cls(urls, BearerToken(token), timeout, tls_context(cfg))

    @classmethod
    def for_node(cls, cfg: Config, node: str) -> ControllerClient:
        """Signing every request with ``node``'s key (``agent.key_file``): the agent."""
        key = read_node_key(expand(cfg.agent.key_file, node))
        assert key is not None  # required=True
        timeout = cfg.controller.request_timeout_s
        return cls(cfg.controller.urls, NodeKey(node, key), timeout, tls_context(cfg))

    def close(self) -> None:
        """Closes the connections kept to the controllers."""
        self._connections.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- agent ---
    def post_report(self, report: Report) -> api.ReportAck:
        body = report.model_dump(mode="json")
        # repeatable: the controller takes a report once by its id, however often sent
        return self._call("POST", "/v1/reports", api.ReportAck, json=body, repeatable=True)

    # --- CLI ---
    def nodes(
        self,
        hosts: str | None = None,
        *,
        state: str | None = None,
        unhealthy: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[api.NodeView]:
        """Nodes in natural order: all, or those of the Slurm host list ``hosts``, whose
        Slurm state contains ``state``, ``unhealthy`` ones; at most ``limit``, from the
        one ``after`` the given name (a full page: ask again after its last)."""
        wanted = {"nodes": hosts, "state": state, "limit": limit, "after": after}
        params = {k: str(v) for k, v in wanted.items() if v is not None}
        if unhealthy:
            params["unhealthy"] = "true"
        return self._call("GET", "/v1/nodes", list[api.NodeView], params=params or None)

    def incidents(self, status: str = "all", node: str | None = None) -> list[api.IncidentView]:
        params = {"status": status, **({"node": node} if node else {})}
        return self._call("GET", "/v1/incidents", list[api.IncidentView], params=params)

    def incident(self, incident_id: int) -> api.IncidentView:
        return self._call("GET", f"/v1/incidents/{incident_id}", api.IncidentView)

    def shared_faults(self, status: str = "all") -> list[api.SharedFaultView]:
        params = {"status": status}
        return self._call("GET", "/v1/shared-faults", list[api.SharedFaultView], params=params)

    def mttf(self, by: str = "all") -> api.MttfView:
        return self._call("GET", "/v1/stats/mttf", api.MttfView, params={"by": by})

    def mttr(self, since: datetime | None = None) -> api.MttrView:
        """Time to recovery per rung and category, over the incidents detected since
        ``since`` (default: the controller's last 30 days)."""
        params = {"since": since.isoformat()} if since is not None else None
        return self._call("GET", "/v1/stats/mttr", api.MttrView, params=params)

    def burnin_median(
        self, model: str, dtype: str | None = None, size: int | None = None
    ) -> api.BurninMedianView:
        params = {"model": model}
        if dtype is not None:
            params["dtype"] = dtype
        if size is not None:
            params["size"] = str(size)
        return self._call("GET", "/v1/burnin/median", api.BurninMedianView, params=params)

    def jobs(self, *, idle: bool = False, all_jobs: bool = False) -> list[api.JobView]:
        params = {"idle": str(idle).lower(), "all": str(all_jobs).lower()}
        return self._call("GET", "/v1/jobs", list[api.JobView], params=params)

    def job(self, job_id: int) -> api.JobView:
        return self._call("GET", f"/v1/jobs/{job_id}", api.JobView)

    def drain(self, node: str, reason: str, *, gate: bool = False) -> api.DrainAnswer:
        body = api.DrainRequest(reason=reason, gate=gate).model_dump()
        return self._call("POST", f"/v1/nodes/{node}/drain", api.DrainAnswer, json=body)

    def resume(self, node: str) -> api.ResumeAnswer:
        return self._call("POST", f"/v1/nodes/{node}/resume", api.ResumeAnswer)

    def hold(self, node: str, why: str) -> api.HoldView:
        body = api.HoldRequest(why=why).model_dump()
        return self._call("POST", f"/v1/nodes/{node}/hold", api.HoldView, json=body)

    def release(self, node: str) -> api.HoldView:
        return self._call("POST", f"/v1/nodes/{node}/release", api.HoldView)

    def breakers(self, tripped_only: bool = False) -> list[api.BreakerView]:
        params = {"tripped": "true"} if tripped_only else None
        return self._call("GET", "/v1/breakers", list[api.BreakerView], params=params)

    def reset_breaker(self, category: str) -> api.BreakerView:
        return self._call("POST", f"/v1/breakers/{category}/reset", api.BreakerView)

    def _call(
        self,
        method: str,
        path: str,
        kind: type[T] | Any,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        repeatable: bool = False,
    ) -> T:
        """``repeatable``: the request may be sent twice (a read always may)."""
        target = path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        body = None if json is None else _json.dumps(json).encode()
        data = self._send(method, target, body, repeatable or method == "GET")
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind.model_validate(data)  # type: ignore[return-value]
        result: T = TypeAdapter(kind).validate_python(data)
        return result

    def _send(self, method: str, target: str, body: bytes | None, repeatable: bool) -> Any:
        """The decoded answer to one request, from the controller that answered last,
        else from the next that can serve it (each tried once); stays with the one that
        answered. ControllerUnavailable naming every one tried when none could."""
        n = len(self._bases)
        failed: list[_TryNext] = []
        for at in [(self._current + i) % n for i in range(n)]:
            try:
                data = self._once(self._bases[at], method, target, body, repeatable)
            except _TryNext as exc:
                failed.append(exc)
                continue
            except (ControllerUnavailable, ControllerFailed, RejectedByController):
                self._current = at  # it answered: the request was the problem
                raise
            self._current = at
            return data
        message = "; ".join(str(exc) for exc in failed)
        raise ControllerUnavailable(message) from failed[-1].__cause__

    def _once(
        self, base: str, method: str, target: str, body: bytes | None, repeatable: bool
    ) -> Any:
        """One try at the controller ``base``, with a credential made for this try."""
        selector = urllib.parse.urlsplit(base).path + target  # a node's signs it as sent

        def headers() -> dict[str, str]:
            auth = self._credential.authorization(method, selector, body or b"")
            sent = {"Authorization": auth}
            if body is not None:
                sent["Content-Type"] = "application/json"
            return sent

        try:
            status, reason, data = self._connections.exchange(
                base, method, selector, body, headers, repeatable=repeatable
            )
        except (OSError, http.client.HTTPException) as exc:
            raise _TryNext(f"controller {base} unreachable: {exc or type(exc).__name__}") from exc
        if status >= 400:
            raise self._answer_error(base, status, _detail(data, reason))
        try:
            return _json.loads(data or b"null")
        except ValueError as exc:
            raise _TryNext(f"controller {base} unreachable: {exc}") from exc

    @staticmethod
    def _answer_error(
        base: str, status: int, detail: str
    ) -> ControllerUnavailable | ControllerFailed | RejectedByController:
        if status in FAILOVER:
            return _TryNext(f"controller {base} answered {status}: {detail}")
        if status in UNAVAILABLE:
            return ControllerUnavailable(f"controller {base} answered {status}: {detail}")
        if status >= 500:
            return ControllerFailed(status, detail)
        return RejectedByController(status, detail)


def _detail(data: bytes, reason: str) -> str:
    raw = data.decode(errors="replace")
    try:
        detail = _json.loads(raw).get("detail", raw)
    except (ValueError, AttributeError):
        detail = raw
    text = str(detail).strip()
    return text.splitlines()[0] if text else reason
