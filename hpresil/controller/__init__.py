"""The controller: takes agents' reports, keeps the incident ledger, drains nodes and
requeues jobs through Slurm, and answers the API in :mod:`hpresil.api`.

* :func:`~hpresil.controller.service.run_controller`: the blocking service.
* :func:`~hpresil.controller.app.create_app`: the FastAPI app over a store and Slurm.
* :mod:`~hpresil.controller.policy` (pure) decides; :mod:`~hpresil.controller.remediation`
  acts; :mod:`~hpresil.controller.reconcile` follows Slurm; :mod:`~hpresil.controller.stats`
  (pure) computes MTTF and MTTR.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpresil.controller.app import create_app
    from hpresil.controller.service import run_controller

__all__ = ["create_app", "run_controller"]
_WHERE = {"create_app": "hpresil.controller.app", "run_controller": "hpresil.controller.service"}


def __getattr__(name: str) -> Any:
    """The two entry points, imported when first asked for: a module of the package
    (the replay, the policy, for the CLI) does not load the web framework with it."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
