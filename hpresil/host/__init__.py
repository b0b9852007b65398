"""Facts about the host outside the GPUs, one fact source per area (STYLE.md pattern 4),
and the :class:`~.collector.Collector` that gathers them with the GPUs' into a snapshot.

Each area's module holds its facts (frozen records that checks read from the snapshot)
and the :class:`~hpresil.vocab.snapshot.FactSource` that collects them: :mod:`.ib`
(InfiniBand ports, counter deltas, link flaps), :mod:`.mounts`, :mod:`.headroom` (disk
and memory), :mod:`.processes` (D state, zombies) and :mod:`.services`. Their settings
are in :mod:`hpresil.config.host`, the checks that judge them in :mod:`hpresil.checks`;
:func:`hpresil.assembly.host_monitoring` builds both from the configuration.
"""
