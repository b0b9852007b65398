"""Health checks: one module per check, an explicit registry (:mod:`.base`).

Checks are configured and assembled in :mod:`hpresil.assembly`; their settings live
in :mod:`hpresil.config` (:mod:`hpresil.config.checks`, :mod:`hpresil.config.host`,
:mod:`hpresil.config.xid`).
"""
