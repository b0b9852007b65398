"""The kernel log: where XIDs come from (:mod:`.sources`), how a line becomes an
:class:`~hpresil.vocab.XidEvent` (:mod:`.parse`), and game-day injection
(:mod:`.inject`)."""
