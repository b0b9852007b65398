"""People, as Slurm knows them: the uid a MUNGE credential proves, and whether that
person is one of the controller's operators.

munged vouches for the uid (:mod:`hpresil.adapters.munge`); this host's user and group
databases (``pwd``, ``grp``: files, LDAP, whatever NSS is set to) name the person and
their groups, asked on each request, so adding someone to the group counts at once.
Operators are root, the users in ``controller.operators`` and the members (primary or
supplementary) of ``controller.operators_group``; anyone else may only read.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from hpresil.adapters import munge
from hpresil.config import ControllerConfig


@dataclass(frozen=True)
class Person:
    """Whom a good MUNGE credential names, and what it carries."""

    uid: int
    name: str  # the user name on this host, or the uid when it has none
    payload: str
    not_operator: str | None  # why they are not an operator; None: they are

    @property
    def proof(self) -> str:
        """How the ledger says they proved it: ``munge uid 1001``."""
        return f"munge uid {self.uid}"


@dataclass(frozen=True)
class People:
    """This host's munged (``socket``) and who counts as an operator."""

    socket: str
    group: str  # "": no group
    names: frozenset[str]

    @classmethod
    def from_config(cls, cfg: ControllerConfig) -> People:
        return cls(cfg.munge_socket, cfg.operators_group, frozenset(cfg.operators))

    def identify(self, credential: str) -> Person:
        """Who made ``credential`` (blocking: runs ``unmunge``); MungeRefused or
        MungeUnavailable as :func:`hpresil.adapters.munge.decode`."""
        decoded = munge.decode(credential, socket=self.socket)
        try:
            entry: pwd.struct_passwd | None = pwd.getpwuid(decoded.uid)
        except KeyError:
            entry = None
        name = entry.pw_name if entry else str(decoded.uid)
        return Person(decoded.uid, name, decoded.payload, self.why_not(decoded.uid, entry))

    def why_not(self, uid: int, entry: pwd.struct_passwd | None) -> str | None:
        """Why ``uid`` (``entry``: its passwd entry here) is not an operator; None when
        they are one."""
        if uid == 0 or (entry is not None and entry.pw_name in self.names):
            return None
        if entry is None:
            return "no such user on the controller host"
        if not self.group:
            return "not in controller.operators (controller.operators_group is unset)"
        try:
            gid = grp.getgrnam(self.group).gr_gid
        except KeyError:
            return (
                f"controller.operators_group {self.group!r} is no group on the controller "
                "host, and not in controller.operators"
            )
        if gid in os.getgrouplist(entry.pw_name, entry.pw_gid):
            return None
        return f"not in controller.operators_group {self.group!r} nor controller.operators"
