"""Health checks: one module per check, an explicit registry (:mod:`.base`).

Per-GPU checks build on :class:`~.per_gpu.PerGpuCheck`, host checks on
:class:`~.host_check.HostCheck`; both judge by listing :class:`~.finding.Finding`.

Checks are configured and assembled in :mod:`hpresil.assembly`; their settings live
in :mod:`hpresil.config` (:mod:`hpresil.config.checks`, :mod:`hpresil.config.host`,
:mod:`hpresil.config.xid`).
"""
