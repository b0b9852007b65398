"""Credentials: the cluster token and the node keys derived from it.

The cluster token (``hpresil token``) is one line in a file only its owner can read
(mode 0600 or stricter), owned by root or by the user reading it (the controller's
service user). Operators and automation send it as a bearer token.

A node's key is HMAC-SHA256(cluster token, ``"hpresil-node-v1:" + node``), written to
that node only (``hpresil token --node NAME``). A node signs each request with it
(``Authorization: HPRESIL-NODE node=…, ts=…, nonce=…, sig=…``) over the method, the
path with its query, the node, the time, a fresh nonce and the SHA-256 of the body, so
a key proves which node sent a request and a captured request cannot be sent again.
The controller derives the key from the token when a request arrives: no key store.
The Slurm hook (slurm-plugins/hpresil-hook) signs the same way without importing this.

People prove who they are with MUNGE (``Authorization: MUNGE <credential>``): the CLI
has munged make a credential for each request whose payload (:class:`MungePayload`)
names the method, the path with its query and the SHA-256 of the body, so it is good
for that request only; munged itself refuses it once used or past its TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hpresil.config import refuse_unsafe
from hpresil.errors import ConfigError

NODE_SCHEME = "HPRESIL-NODE"  # the Authorization scheme of a node's signed request
MUNGE_SCHEME = "MUNGE"  # the Authorization scheme of a person's MUNGE credential
MUNGE_CONTEXT = "hpresil-munge-v1"  # the first line of a MUNGE credential's payload
NODE_KEY_CONTEXT = b"hpresil-node-v1:"
NODE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # as vocab.Report.node
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_TS = re.compile(r"[0-9]{1,12}")


# --- files ---
def read_token(path: Path, *, required: bool = True) -> str | None:
    """Read the cluster token; refuse a file that group or others can read, or that a
    user other than root or the one running owns (they could swap the token)."""
    return _read_secret(path, "token file", "create it with `hpresil token`", required)


def read_node_key(path: Path, *, required: bool = True) -> str | None:
    """Read a node's key file, with the token file's rules; refuse anything but a key."""
    hint = "write it on the controller host with `hpresil token --node NAME` and copy it here"
    key = _read_secret(path, "node key file", hint, required)
    if key is not None and not _HEX64.fullmatch(key):
        raise ConfigError(f"node key file {path}: not a node key; {hint}")
    return key


def write_token(path: Path) -> str:
    """Create a new random token file readable by its owner only."""
    token = secrets.token_urlsafe(32)
    write_secret(path, token)
    return token


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to ``path`` (created 0600, its folder if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.chmod(path, 0o600)


def _read_secret(path: Path, what: str, hint: str, required: bool) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{what} {path}: not found ({hint})") from None
        return None
    except PermissionError:
        if required:
            raise ConfigError(f"{what} {path}: permission denied (run as root)") from None
        return None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{what} {path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read it; "
            f"run `chmod 600 {path}`"
        )
    refuse_unsafe(what, path, st)
    refuse_unsafe(what.replace("file", "folder"), path.parent, path.parent.stat())
    try:
        secret = path.read_text().strip()
    except PermissionError:  # anyone may stat a 0600 root file; only root may read it
        if required:
            raise ConfigError(f"{what} {path}: permission denied (run as root)") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot read: {exc}") from None
    if len(secret) < 16:
        raise ConfigError(f"{what} {path}: shorter than 16 characters")
    return secret


# --- comparing and deriving ---
def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def node_key(cluster_token: str, node: str) -> str:
    """``node``'s key (64 hex digits), derived from the cluster token."""
    message = NODE_KEY_CONTEXT + node.encode()
    return hmac.new(cluster_token.encode(), message, hashlib.sha256).hexdigest()


def request_signature(
    key: str, method: str, target: str, node: str, ts: int, nonce: str, body: bytes
) -> str:
    """The signature of one request: ``target`` is the path with its query, as sent."""
    lines = (NODE_SCHEME, method.upper(), target, node, str(ts), nonce)
    message = "\n".join((*lines, hashlib.sha256(body).hexdigest())).encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


# --- the Authorization header ---
@dataclass(frozen=True)
class NodeSignature:
    """The fields of an ``HPRESIL-NODE`` Authorization header."""

    node: str
    ts: int
    nonce: str
    sig: str

    @classmethod
    def parse(cls, credentials: str) -> NodeSignature:
        """``node=…, ts=…, nonce=…, sig=…`` (the header after the scheme); ValueError
        with the reason for anything else."""
        fields: dict[str, str] = {}
        for part in credentials.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or name in fields:
                raise ValueError("expected node=, ts=, nonce=, sig= once each")
            fields[name] = value.strip()
        if sorted(fields) != ["node", "nonce", "sig", "ts"]:
            raise ValueError("expected node=, ts=, nonce=, sig= once each")
        for name, pattern in (("node", NODE_NAME), ("ts", _TS), ("nonce", _NONCE), ("sig", _HEX64)):
            if not pattern.fullmatch(fields[name]):
                raise ValueError(f"{name}= is malformed")
        return cls(fields["node"], int(fields["ts"]), fields["nonce"], fields["sig"])

    def header(self) -> str:
        return f"{NODE_SCHEME} node={self.node}, ts={self.ts}, nonce={self.nonce}, sig={self.sig}"


@dataclass(frozen=True)
class MungePayload:
    """What a person's MUNGE credential carries: the one request it is good for."""

    method: str
    target: str  # the path with its query, as sent
    body_sha256: str

    @classmethod
    def of(cls, method: str, target: str, body: bytes) -> MungePayload:
        return cls(method.upper(), target, hashlib.sha256(body).hexdigest())

    @classmethod
    def parse(cls, text: str) -> MungePayload:
        """The payload :meth:`text` wrote; ValueError for anything else."""
        lines = text.split("\n")
        if len(lines) != 4 or lines[0] != MUNGE_CONTEXT or not _HEX64.fullmatch(lines[3]):
            raise ValueError("not an hpresil request")
        return cls(lines[1], lines[2], lines[3])

    def text(self) -> str:
        return "\n".join((MUNGE_CONTEXT, self.method, self.target, self.body_sha256))


class Credential(Protocol):
    """What a client sends in ``Authorization`` for one request."""

    def authorization(self, method: str, target: str, body: bytes) -> str: ...


@dataclass(frozen=True)
class BearerToken:
    """The cluster token: an operator's or automation's credential."""

    token: str

    def authorization(self, method: str, target: str, body: bytes) -> str:
        return f"Bearer {self.token}"


@dataclass(frozen=True)
class NodeKey:
    """A node's key: each request signed afresh (its own time and nonce)."""

    node: str
    key: str
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def authorization(self, method: str, target: str, body: bytes) -> str:
        ts, nonce = int(self.clock()), secrets.token_hex(16)
        sig = request_signature(self.key, method, target, self.node, ts, nonce, body)
        return NodeSignature(self.node, ts, nonce, sig).header()
