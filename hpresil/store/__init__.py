"""The controller's database: models, migrations, and the queries over them.

``Store.open(url)`` then ``store.migrate()``; ``with store.write() as session:`` for
a transaction that writes, ``store.read()`` for one that only reads. Query helpers
live in :mod:`hpresil.store.repo`.
"""

from hpresil.clock import Clock, utcnow
from hpresil.store.db import Store

__all__ = ["Clock", "Store", "utcnow"]
