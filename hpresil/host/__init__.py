"""Facts about the host outside the GPUs, one fact source per area (STYLE.md pattern 4).

Each module holds an area's configuration model, its facts (frozen records that checks
read from the snapshot) and the :class:`~hpresil.vocab.snapshot.FactSource` that
collects them: :mod:`.ib` (InfiniBand ports, counter deltas, link flaps),
:mod:`.mounts`, :mod:`.headroom` (disk and memory), :mod:`.processes` (D state,
zombies) and :mod:`.services`. The checks that judge them live in
:mod:`hpresil.checks`; :mod:`.wiring` builds both from the configuration.
"""
