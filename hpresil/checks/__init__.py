"""Health checks: one module per check, an explicit registry (:mod:`.base`).

``default_registry()`` gives the built-in checks plus installed plugins; a future
``hpresil check`` command runs them with :class:`~hpresil.checks.base.CheckRunner`.
"""

from hpresil.checks.base import (
    Check,
    CheckRunner,
    DuplicateCheckError,
    Registry,
    builtin_checks,
    default_registry,
    load_plugins,
)

__all__ = [
    "Check",
    "CheckRunner",
    "DuplicateCheckError",
    "Registry",
    "builtin_checks",
    "default_registry",
    "load_plugins",
]
