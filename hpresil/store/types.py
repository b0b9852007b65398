"""Column types that behave the same on SQLite and PostgreSQL, and the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns aware datetimes.

    PostgreSQL keeps the zone (``timestamptz``); SQLite has none, so the value is
    written as naive UTC and read back with UTC attached."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: hpresil stores aware UTC only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class StrEnumType(TypeDecorator[E], Generic[E]):
    """A :class:`StrEnum` stored as its value in a plain ``VARCHAR`` (no native enum,
    so adding a member needs no migration)."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum: type[E], *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.enum = enum  # same name as the argument: part of the statement cache key

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)
