"""Who is calling the API, and what they may do: checked before any route runs.

Three kinds of caller (:class:`Caller`):

* ``operator``: the cluster token as a bearer token (automation), or a person whose
  MUNGE credential proves a uid the controller counts as an operator
  (:mod:`hpresil.controller.people`: root, ``controller.operators``, members of
  ``controller.operators_group``). Everything.
* ``node``: a request signed with that node's key (:mod:`hpresil.auth`). Reads (GET),
  its own reports (``POST /v1/reports`` whose ``node`` is its own) and a drain of
  itself (``POST /v1/nodes/<itself>/drain``: the Slurm health hook); any other write
  is 403.
* ``reader``: anyone else with a good MUNGE credential, as ``sinfo`` is. Reads; any
  write is 403.

:class:`CallerGate` (pure ASGI, outermost) settles it from the headers wherever it can,
before a byte of the body is read: a missing or wrong token, a malformed, stale or
forbidden node request, a refused MUNGE credential (decoded by this host's munged off
the event loop), one made for another request, a reader's write. A node's signature
and a MUNGE credential cover the body's SHA-256, so that body is read up to the API's
limit, then handed on to the app unchanged. Each node's nonces are remembered for the
clock-skew window (:class:`NonceWindow`); munged refuses a MUNGE credential used twice
or past its TTL. The route's dependency (:func:`caller`) gives the settled
:class:`Caller` to routes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hpresil.adapters.munge import MungeRefused, MungeUnavailable
from hpresil.auth import (
    MUNGE_SCHEME,
    NODE_SCHEME,
    MungePayload,
    NodeSignature,
    node_key,
    request_signature,
    token_matches,
)
from hpresil.controller.people import People, Person

WRONG_TOKEN = "missing or wrong bearer token"
KEYS_HELD = 1 << 16  # nodes whose key is kept derived
NONCES_PER_NODE = 1024  # remembered per node; the oldest beyond it raise that node's floor
# what a node's key may write besides reading; "{self}" is the node the key belongs to
NODE_WRITES = frozenset({("POST", "/v1/reports"), ("POST", "/v1/nodes/{self}/drain")})
_READS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Caller:
    """Who sent a request (see the module): ``name`` is ``operator`` for the token, the
    node whose key signed it, or the person's user name; ``proof`` is how they proved
    it."""

    kind: Literal["node", "operator", "reader"]
    name: str
    proof: str

    @classmethod
    def person(cls, who: Person) -> Caller:
        return cls("reader" if who.not_operator else "operator", who.name, who.proof)

    @property
    def who(self) -> str:
        """How the ledger names the caller: ``operator (token)``, ``node1 (node key)``,
        ``alice (munge uid 1001)``."""
        return f"{self.name} ({self.proof})"

    def refuse_other_node(self, node: str) -> None:
        """403 when a node's key speaks for another node (the body's ``node``)."""
        if self.kind == "node" and node != self.name:
            raise HTTPException(403, f"node: {node!r} is not {self.name!r}, whose key signed it")


OPERATOR_TOKEN = Caller("operator", "operator", "token")


# --- the dependency routes use ---
_scheme = HTTPBearer(
    auto_error=False,
    description=(
        "The cluster token (`hpresil token`) as a bearer token (an operator), a node's "
        f"request signed with its key: `Authorization: {NODE_SCHEME} node=…, ts=…, "
        "nonce=…, sig=…`, or a person's MUNGE credential made for the request: "
        f"`Authorization: {MUNGE_SCHEME} <credential>` (see hpresil.auth)."
    ),
)


async def caller(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]
) -> Caller:
    """The caller :class:`CallerGate` settled (``_``: the scheme, for the API document);
    async, so that FastAPI does not hand this lookup to a worker thread."""
    found = getattr(request.state, "caller", None)
    if not isinstance(found, Caller):
        raise HTTPException(401, WRONG_TOKEN, headers={"WWW-Authenticate": "Bearer"})
    return found


Who = Annotated[Caller, Depends(caller)]


# --- replay ---
class NonceWindow:
    """Each node's nonces seen within the clock-skew window (older requests are refused
    by their time anyway). At most ``per_node`` per node: when full, the oldest is
    dropped and the node's floor rises to its time, so no request stamped at or before
    the floor is taken, and a dropped nonce cannot come back. Only verified requests
    add nonces, so only key holders use memory."""

    def __init__(self, window_s: float, per_node: int = NONCES_PER_NODE) -> None:
        self._window_s = window_s
        self._per_node = per_node
        self._seen: dict[str, OrderedDict[str, float]] = {}
        self._floor: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, node: str, nonce: str, ts: float, now: float) -> bool:
        """Remember ``nonce``; False when it was seen or ``ts`` is at or below the floor."""
        with self._lock:
            seen = self._seen.setdefault(node, OrderedDict())
            if nonce in seen or ts <= self._floor.get(node, float("-inf")):
                return False
            while seen and next(iter(seen.values())) < now - self._window_s:
                seen.popitem(last=False)
            if len(seen) >= self._per_node:
                _, dropped = seen.popitem(last=False)
                self._floor[node] = max(dropped, self._floor.get(node, dropped))
            seen[nonce] = ts
            return True


# --- the gate ---
class CallerGate:
    """Settles the caller of each request under ``prefix`` (see the module) into
    ``scope["state"]["caller"]``, or answers 401/403/413 without running the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        prefix: str,
        max_skew_s: float,
        max_body: int,
        clock: Callable[[], datetime],
        people: People,
    ) -> None:
        self.app = app
        self.token = token
        self.people = people
        self.prefix = prefix
        self.max_skew_s = max_skew_s
        self.max_body = max_body
        self.clock = clock
        self.nonces = NonceWindow(max_skew_s)
        # each node's key, derived once (an HMAC a request otherwise)
        self.key_of = functools.lru_cache(maxsize=KEYS_HELD)(functools.partial(node_key, token))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        scheme, credentials = _authorization(scope)
        if scheme == "bearer" and token_matches(credentials, self.token):
            await self._pass(OPERATOR_TOKEN, scope, receive, send)
        elif scheme == NODE_SCHEME.lower():
            await self._node(credentials, scope, receive, send)
        elif scheme == MUNGE_SCHEME.lower():
            await self._munge(credentials, scope, receive, send)
        else:
            await _answer(scope, send, 401, WRONG_TOKEN, "Bearer")

    async def _node(self, credentials: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            signed = NodeSignature.parse(credentials)
        except ValueError as exc:
            await _answer(scope, send, 401, f"node key: malformed {NODE_SCHEME} header: {exc}")
            return
        now = self.clock().timestamp()
        if abs(now - signed.ts) > self.max_skew_s:
            text = (
                f"node key: ts={signed.ts} is off from the controller's clock by more than "
                f"controller.max_clock_skew_s ({self.max_skew_s:g} s)"
            )
            await _answer(scope, send, 401, text)
            return
        method, path = str(scope["method"]), str(scope["path"])
        if method not in _READS and not node_may_write(method, path, signed.node):
            text = (
                f"node key of {signed.node}: may not {method} {path} (a node's key may read, "
                "send its own reports and drain itself; the rest needs the cluster token)"
            )
            await _answer(scope, send, 403, text)
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await _answer(scope, send, 413, f"request body over {self.max_body} bytes")
            return
        key = self.key_of(signed.node)
        fields = (signed.node, signed.ts, signed.nonce)
        expected = request_signature(key, method, _target(scope), *fields, body)
        if not hmac.compare_digest(expected, signed.sig):
            await _answer(scope, send, 401, f"node key of {signed.node}: bad signature")
        elif not self.nonces.first_use(signed.node, signed.nonce, signed.ts, now):
            await _answer(scope, send, 401, f"node key of {signed.node}: replayed request")
        else:
            who = Caller("node", signed.node, "node key")
            await self._pass(who, scope, _replay(body, receive), send)

    async def _munge(self, credential: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            person = await run_in_threadpool(self.people.identify, credential)
            made_for = MungePayload.parse(person.payload)
        except MungeRefused as exc:
            await _answer(scope, send, 401, f"MUNGE: {exc}", MUNGE_SCHEME)
            return
        except ValueError:
            text = "MUNGE: the credential's payload is not an hpresil request"
            await _answer(scope, send, 401, text, MUNGE_SCHEME)
            return
        except MungeUnavailable as exc:
            await _answer(scope, send, 503, f"{exc} (the controller's munged)")
            return
        method, target = str(scope["method"]), _target(scope)
        if (made_for.method, made_for.target) != (method, target):
            made = f"{made_for.method} {made_for.target}"
            text = f"MUNGE: credential made for {made}, not for {method} {target}"
            await _answer(scope, send, 401, text, MUNGE_SCHEME)
            return
        if method not in _READS and person.not_operator:
            text = f"{person.name} (uid {person.uid}) is not an operator: {person.not_operator}"
            await _answer(scope, send, 403, text)
            return
        body = await _read_body(receive, self.max_body)
        if body is None:
            await _answer(scope, send, 413, f"request body over {self.max_body} bytes")
        elif hashlib.sha256(body).hexdigest() != made_for.body_sha256:
            text = "MUNGE: credential made for another body, not this request's"
            await _answer(scope, send, 401, text, MUNGE_SCHEME)
        else:
            await self._pass(Caller.person(person), scope, _replay(body, receive), send)

    async def _pass(self, who: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = {**scope.get("state", {}), "caller": who}
        await self.app(scope, receive, send)


def node_may_write(method: str, path: str, node: str) -> bool:
    """Whether ``node``'s key may send this write (see :data:`NODE_WRITES`)."""
    return (method, path.replace(f"/nodes/{node}/", "/nodes/{self}/", 1)) in NODE_WRITES


def _authorization(scope: Scope) -> tuple[str, str]:
    """(scheme in lower case, credentials) of the Authorization header; ("", "") if none."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return scheme.lower(), credentials.strip()
    return "", ""


def _target(scope: Scope) -> str:
    """The path and query as the client sent them (what it signed)."""
    raw = scope.get("raw_path") or str(scope["path"]).encode()
    query = scope.get("query_string") or b""
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes ``limit`` bytes (not read further)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body already read, then the connection's own."""
    return replayed({"type": "http.request", "body": body, "more_body": False}, receive)


def replayed(first: Message, receive: Receive) -> Receive:
    """``receive`` that gives ``first`` (a message already read), then the connection's."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return first

    return replay


async def _answer(scope: Scope, send: Send, status: int, text: str, scheme: str = "") -> None:
    answer = JSONResponse({"detail": text}, status_code=status)
    if status == 401:
        answer.headers["WWW-Authenticate"] = scheme or NODE_SCHEME
    await answer(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
