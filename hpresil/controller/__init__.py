"""The controller: takes agents' reports, keeps the incident ledger, drains nodes and
requeues jobs through Slurm, and answers the API in :mod:`hpresil.api`.

* :func:`~hpresil.controller.service.run_controller`: the blocking service.
* :func:`~hpresil.controller.app.create_app`: the FastAPI app over a store and Slurm.
* :mod:`~hpresil.controller.policy` (pure) decides; :mod:`~hpresil.controller.remediation`
  acts; :mod:`~hpresil.controller.reconcile` follows Slurm; :mod:`~hpresil.controller.stats`
  (pure) computes MTTF and MTTR.
"""

from hpresil.controller.app import create_app
from hpresil.controller.service import run_controller

__all__ = ["create_app", "run_controller"]
