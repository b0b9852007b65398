"""The kernel log: where XIDs come from (:mod:`.sources`), how a line becomes an
:class:`~hpresil.vocab.XidEvent` (:mod:`.prefix` strips what log sources add,
:mod:`.parse` reads XID, SXid and GPU-lost lines, :mod:`.identity` the driver's
UUID and serial lines), and game-day injection (:mod:`.inject`)."""
