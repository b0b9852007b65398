"""NVIDIA DCGM: what ``dcgmi diag -j`` and ``dcgmi health -c -j`` print, read into
hpresil's vocabulary.

* :mod:`.mapping`: DCGM's error categories and severities as enums, and how a
  finding maps to a :class:`~hpresil.vocab.Category` and an
  :class:`~hpresil.vocab.Action`;
* :mod:`.model`: the normalised records (:class:`~.model.DiagReport`,
  :class:`~.model.HealthReport`);
* :mod:`.parse` (diagnostics) and :mod:`.health` (health watches): JSON to records;
* :mod:`.sources`: the agent's fact source for health watches.

The ``[dcgm]`` configuration table is :mod:`hpresil.config.dcgm`.

Running ``dcgmi`` itself is :mod:`.dcgmi`.
"""
