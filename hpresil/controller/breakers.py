"""The breakers, for the API: list them, and reset one (an operator, once the cause
of a mass misfire is found). Tripping is the limits' (:mod:`hpresil.controller.limits`)."""

from __future__ import annotations

import logging

from hpresil.api import BreakerView
from hpresil.controller.errors import NotFound
from hpresil.store import Clock, Store
from hpresil.store import limits as ledger
from hpresil.vocab import Category

log = logging.getLogger(__name__)


class Breakers:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def list(self, tripped_only: bool = False) -> list[BreakerView]:
        with self._store.read() as s:
            rows = ledger.breakers(s, tripped_only=tripped_only)
            return [BreakerView.model_validate(r, from_attributes=True) for r in rows]

    def reset(self, category: Category, by: str) -> BreakerView:
        """Close the tripped breaker of ``category``: its drains are done again."""
        with self._store.write() as s:
            row = ledger.reset(s, category, by, self._clock())
            if row is None:
                raise NotFound(f"no tripped breaker for {category.value}")
            view = BreakerView.model_validate(row, from_attributes=True)
        log.warning("breaker of %s reset by %s", category.value, by)
        return view
