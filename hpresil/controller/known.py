"""Which node names the controller takes reports for: the nodes Slurm knows.

A report for a name Slurm does not know would store a phantom node (and its
"hardware failures" would count in MTTF), so :meth:`KnownNodes.require` answers:

* a name that cannot be a Slurm node name (empty, blanks, a leading ``-`` or ``.``,
  only dots, over 128 characters) is refused at once, Slurm not asked;
* a name in the cached list of Slurm's nodes is accepted at once;
* any other name makes the list be read again from Slurm, at most once every
  ``refresh_s`` (junk names cannot make the controller hammer slurmctld), and is
  refused if Slurm does not list it: :class:`NotFound` naming ``node``.

The list starts from the nodes the store has seen Slurm list (the reconcile pass
records them), so a restarted controller accepts its cluster without asking.

Slurm unreachable: names already known are still accepted; an unknown name gets
the :class:`SlurmError` (the API answers 502), not a refusal, so the agent keeps its
report and delivers it once Slurm answers. Nothing is lost, nothing phantom stored.
Only a controller that has never had Slurm's list (a new database, Slurm down since
it started) takes any well-formed name, rather than hold up every report of the
cluster; MTTF counts only nodes Slurm listed, so what it took then cannot count.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from hpresil.adapters.slurm import Slurm
from hpresil.controller.errors import NotFound
from hpresil.errors import SlurmError
from hpresil.store import Store
from hpresil.store.models import NodeRow

log = logging.getLogger(__name__)

MAX_NAME = 128  # the nodes table's name column
REFRESH_S = 30.0
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a Slurm node name, or None."""
    if not name:
        return "empty"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if name.startswith("-"):
        return "starts with '-'"
    if name.startswith("."):
        return "starts with '.'"
    if not _NAME.match(name):
        return "only letters, digits, '_', '.' and '-' are allowed"
    return None


def check_name(name: str) -> None:
    """Raise :class:`NotFound` naming ``node`` if ``name`` cannot be a Slurm node."""
    problem = name_problem(name)
    if problem is not None:
        raise NotFound(f"node: {name[:MAX_NAME]!r} is not a Slurm node name ({problem})")


class KnownNodes:
    def __init__(
        self,
        slurm: Slurm,
        store: Store,
        *,
        refresh_s: float = REFRESH_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._slurm = slurm
        self._store = store
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._names: frozenset[str] | None = None  # None: not read yet
        self._asked_at: float | None = None
        self._error: SlurmError | None = None  # the last refresh's, while it is recent
        self._lock = threading.Lock()

    def require(self, name: str) -> None:
        """Return if Slurm knows ``name``; else raise (see the module's rules)."""
        check_name(name)
        if self.holds(name):
            return
        with self._lock:
            if self._names is None:
                self._names = self._seen_by_slurm()
            if name in self._names:
                return
            try:
                names = self._refreshed()
            except SlurmError as exc:
                if self._names:
                    raise
                log.warning("%s taken unchecked: no list of Slurm's nodes yet: %s", name, exc)
                return
            if name not in names:
                raise NotFound(f"node: slurm has no node named {name!r}")

    def holds(self, name: str) -> bool:
        """Whether ``name`` is in the list held now (Slurm not asked, nothing waited for)."""
        names = self._names
        return names is not None and name in names

    def _refreshed(self) -> frozenset[str]:
        """The list, read again from Slurm if the last read is old enough."""
        assert self._names is not None
        now = self._monotonic()
        if self._asked_at is not None and now - self._asked_at < self._refresh_s:
            if self._error is not None:
                raise self._error
            return self._names
        self._asked_at = now
        try:
            self._names = frozenset(node.name for node in self._slurm.nodes())
        except SlurmError as exc:
            self._error = exc
            raise
        self._error = None
        return self._names

    def _seen_by_slurm(self) -> frozenset[str]:
        query = select(NodeRow.name).where(NodeRow.slurm_seen_at.is_not(None))
        with self._store.read() as s:
            return frozenset(s.scalars(query))
