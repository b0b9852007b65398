"""Health checks: one module per check, an explicit registry (:mod:`.base`).

Checks are configured and assembled in :mod:`hpresil.assembly`; this package imports
nothing itself, so configuration models (such as :mod:`.xid_table`'s) stay importable
from :mod:`hpresil.config`.
"""
