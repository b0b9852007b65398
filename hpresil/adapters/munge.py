"""MUNGE: who a local user is, proven to another host of the cluster.

munged runs on every Slurm node with the cluster's key. :func:`encode` (``munge``)
asks this host's munged for a credential carrying a payload and the uid and gid of the
user running; :func:`decode` (``unmunge``) asks it whose credential one is. munged
decodes each credential once (a second time is "Replayed credential") and only within
its TTL (300 s unless the encoder asked otherwise: "Expired credential"); one made
with another key, or changed on the way, is "Invalid credential". Both commands run
through :func:`hpresil.adapters.proc.run` under a timeout, the payload and the
credential on stdin (never in argv: ``ps`` would show them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hpresil.adapters.proc import run
from hpresil.errors import CommandError, HpresilError

TIMEOUT_S = 5.0
ARMOR = re.compile(r"MUNGE:[A-Za-z0-9+/=]{16,4096}:")  # what `munge` prints: base64, armored
_NOT_ASKED = range(1, 8)  # munge_err_t up to EMUNGE_TIMEOUT: munged was not reached
_NUMBER = re.compile(r"\((\d+)\)\s*$")  # "root (0)", "Replayed credential (17)"


class MungeUnavailable(CommandError):
    """munged could not be asked (not running, no socket, no answer in time, or
    ``munge`` not installed): nothing is known about the credential."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        timed_out: bool = False,
        timeout: float | None = None,
    ) -> None:
        super().__init__(argv, returncode, stdout, stderr, timed_out, timeout)
        said = (stderr or stdout).strip().splitlines()
        if timed_out:
            why = f"munged did not answer within {timeout or 0:g} s"
        elif returncode is None:
            why = f"`{self.argv[0]}` could not be started: {said[-1] if said else 'not found'}"
        else:
            why = _without_prefix(said[-1]) if said else f"`{self.argv[0]}` exited {returncode}"
        Exception.__init__(self, f"MUNGE: {why}")


class MungeRefused(HpresilError):
    """munged refused the credential; the message is why (invalid, expired, replayed)."""


@dataclass(frozen=True)
class Decoded:
    """A credential munged vouched for: who made it, when, and what it carries."""

    uid: int
    gid: int
    encoded_at: int  # seconds since the epoch, by the encoding host's clock
    payload: str


def encode(payload: str, *, socket: str, timeout: float = TIMEOUT_S) -> str:
    """A credential for ``payload`` as the user running (``munge``); MungeUnavailable
    when munged cannot be asked."""
    argv = ["munge", "--socket", socket]
    done = run(argv, timeout=timeout, input_text=payload, error=MungeUnavailable)
    return done.stdout.strip()


def decode(credential: str, *, socket: str, timeout: float = TIMEOUT_S) -> Decoded:
    """Whose ``credential`` is and its payload (``unmunge``): MungeRefused naming why
    it is not good, MungeUnavailable when munged cannot be asked."""
    if not ARMOR.fullmatch(credential):
        raise MungeRefused("not a MUNGE credential")
    argv = ["unmunge", "--socket", socket]
    try:
        done = run(
            argv, timeout=timeout, input_text=credential, check=False, error=MungeUnavailable
        )
    except UnicodeDecodeError:
        raise MungeRefused("its payload is not text") from None
    if done.returncode in _NOT_ASKED:
        raise MungeUnavailable(argv, done.returncode, done.stdout, done.stderr)
    head, _, payload = done.stdout.partition("\n\n")
    fields = dict(_field(line) for line in head.splitlines() if ":" in line)
    if done.returncode != 0:
        said = fields.get("STATUS") or (done.stderr.strip().splitlines() or ["refused"])[-1]
        raise MungeRefused(_without_prefix(_NUMBER.sub("", said).strip()).lower())
    try:
        return Decoded(
            uid=_number(fields["UID"]),
            gid=_number(fields["GID"]),
            encoded_at=_number(fields["ENCODE_TIME"]),
            payload=payload,
        )
    except (KeyError, ValueError):
        raise MungeRefused(f"unmunge answered without UID, GID or time: {head!r}") from None


def _field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip(), value.strip()


def _number(value: str) -> int:
    """The number in ``root (0)`` or ``2026-12-06 14:53:18 +0000 (1796568798)``."""
    found = _NUMBER.search(value)
    if found is None:
        raise ValueError(value)
    return int(found.group(1))


def _without_prefix(line: str) -> str:
    """``Invalid credential`` from ``unmunge: Error: Invalid credential``."""
    return re.sub(r"^\S*munge: Error: ", "", line)
