"""The registry that holds health checks, and the runner that keeps one broken check
from harming the others (STYLE.md patterns 1 and 2).

A check (:class:`~hpresil.vocab.snapshot.Check`) is a small class: ``name``, ``tags``
(tiers such as "quick" and "continuous"), ``interval_s``, ``timeout_s``,
``supported(snapshot)`` and a pure ``evaluate(snapshot) -> list[CheckResult]``.
Third-party checks register through the entry-point group ``hpresil.checks`` (a Check
class, an instance, or a callable returning a list of them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from importlib import metadata
from typing import Any

from hpresil.errors import HpresilError
from hpresil.vocab import CheckResult, Status
from hpresil.vocab.snapshot import Check, Snapshot
from hpresil.vocab.timeout import call_with_timeout

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hpresil.checks"
EVENT_TAG = "event"  # checks whose results are one-off events (reported once)


class DuplicateCheckError(HpresilError):
    """Two checks with one name."""


class Registry:
    """Checks by name, in registration order. Refuses a second check with a taken name."""

    def __init__(self, checks: Iterable[Check] = ()) -> None:
        self._checks: dict[str, Check] = {}
        for check in checks:
            self.register(check)

    def register(self, check: Check) -> Check:
        if not isinstance(check.name, str) or not 0 < len(check.name) <= 64:
            raise HpresilError(f"check name must be 1-64 characters: {check.name!r}")
        if check.name in self._checks:
            raise DuplicateCheckError(f"a check named {check.name!r} is already registered")
        self._checks[check.name] = check
        return check

    def get(self, name: str) -> Check:
        try:
            return self._checks[name]
        except KeyError:
            known = ", ".join(self._checks) or "none"
            raise HpresilError(f"no check named {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return list(self._checks)

    def select(self, tag: str | None = None) -> list[Check]:
        """All checks, or those carrying ``tag``."""
        return [c for c in self._checks.values() if tag is None or tag in c.tags]

    def __iter__(self) -> Iterator[Check]:
        return iter(list(self._checks.values()))

    def __len__(self) -> int:
        return len(self._checks)


def load_plugins(
    registry: Registry, entry_points: Iterable[metadata.EntryPoint] | None = None
) -> list[str]:
    """Register checks from entry points; a plugin that fails to load, is not a check
    or takes a used name is logged and skipped. Answers the names registered."""
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    added: list[str] = []
    for ep in eps:
        try:
            checks = _instances(ep.load())
            for check in checks:
                registry.register(check)
                added.append(check.name)
        except Exception as exc:
            log.warning("check plugin %s (%s) skipped: %s", ep.name, ep.value, exc)
    return added


def _instances(obj: Any) -> list[Check]:
    if isinstance(obj, type) or (not isinstance(obj, Check) and callable(obj)):
        obj = obj()  # a Check class, or a factory
    items = obj if isinstance(obj, list | tuple) else [obj]
    for item in items:
        if not isinstance(item, Check):
            raise TypeError(f"{item!r} is not a check (needs name, tags, evaluate, ...)")
    return list(items)


class CheckRunner:
    """Runs a registry's checks on a snapshot, each on its own thread under its
    ``timeout_s``: an exception or a timeout becomes one UNKNOWN result. A check still
    hung from an earlier run is not started again. A check whose ``interval_s`` has
    not elapsed keeps its previous results."""

    def __init__(self, registry: Registry, clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._clock = clock
        self._last_run: dict[str, float] = {}
        self._last: dict[str, list[CheckResult]] = {}
        self._running: dict[str, float] = {}  # name -> start, for checks not yet returned
        self._lock = threading.Lock()

    def run(self, snapshot: Snapshot) -> list[CheckResult]:
        results: list[CheckResult] = []
        for check in self._registry:
            results.extend(self._run_one(check, snapshot))
        return results

    def _run_one(self, check: Check, snapshot: Snapshot) -> list[CheckResult]:
        now = self._clock()
        last = self._last_run.get(check.name)
        if last is not None and now - last < check.interval_s:
            return self._last.get(check.name, [])
        self._last_run[check.name] = now
        results = self._evaluate(check, snapshot)
        self._last[check.name] = results
        return results

    def _evaluate(self, check: Check, snapshot: Snapshot) -> list[CheckResult]:
        with self._lock:
            started = self._running.get(check.name)
        if started is not None:
            ago = self._clock() - started
            return [unknown(check.name, f"still running from {ago:.0f} s ago", snapshot.taken_at)]
        try:
            if not check.supported(snapshot):
                return []
            with self._lock:
                self._running[check.name] = self._clock()
            results = call_with_timeout(
                lambda: self._guarded(check, snapshot), check.timeout_s, f"check-{check.name}"
            )
            bad = next((r for r in results if not isinstance(r, CheckResult)), None)
            if bad is not None:
                raise TypeError(f"returned {type(bad).__name__}, not CheckResult")
            return results
        except TimeoutError:
            log.warning("check %s timed out after %g s", check.name, check.timeout_s)
            msg = f"timed out after {check.timeout_s:g} s"
            return [unknown(check.name, msg, snapshot.taken_at)]
        except Exception as exc:
            log.warning("check %s failed: %r", check.name, exc)
            return [unknown(check.name, f"check failed: {exc!r}", snapshot.taken_at)]

    def _guarded(self, check: Check, snapshot: Snapshot) -> list[CheckResult]:
        try:
            return list(check.evaluate(snapshot))
        finally:
            with self._lock:
                self._running.pop(check.name, None)


def unknown(check: str, summary: str, at: datetime) -> CheckResult:
    return CheckResult(
        check=check[:64], status=Status.UNKNOWN, summary=summary[:500], observed_at=at
    )
