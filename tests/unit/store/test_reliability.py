"""SQLite sums the ledger from what migration 0007 indexes: the passes over every
incident read each value from the index (no julianday(), no comparison of categories),
which holds only while reliability spells the expressions as the migration did.
Whether the sums are right: tests/unit/controller/test_mttf_ledger.py."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hpresil.store import Store, reliability
from hpresil.store.db import MIGRATIONS

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store.open(f"sqlite:///{tmp_path}/hpresil.db")
    st.migrate()
    return st


def passes(store: Store, by_category: bool) -> list[tuple[str, Any]]:
    """The statements that read every incident (no WHERE), as run for the sums."""
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if "INDEXED BY" in sql and "WHERE" not in sql:
            seen.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        with store.read() as s:
            counted = reliability.Counted([], [])
            reliability.summed(s, NOW - timedelta(days=900), NOW, counted, by_category=by_category)
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    return seen


@pytest.mark.parametrize("by_category", [False, True])
def test_the_passes_over_every_incident_read_the_indexed_values(
    store: Store, by_category: bool
) -> None:
    found = passes(store, by_category)
    assert len(found) == (2 if by_category else 1)
    with store.engine.connect() as conn:
        for sql, params in found:
            program = conn.exec_driver_sql(f"EXPLAIN {sql}", params).all()
            calls = [op[4] for op in program if op[1] in ("Function", "PureFunc")]
            assert calls == [], (sql, calls)  # an expression not found in the index
            worked = {op[1] for op in program} & {"OpenEphemeral", "Concat"}
            assert worked == set(), sql  # nor a list of categories, nor an interval's text


def test_reliability_spells_the_expressions_as_the_migration_indexed_them() -> None:
    path = MIGRATIONS / "versions" / "0007_ledger_sums.py"
    spec = importlib.util.spec_from_file_location("ledger_sums", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    for name in ("HI", "LO", "FAILURE", "TOOK", "PROOF"):
        assert getattr(reliability, name) == getattr(migration, name), name
