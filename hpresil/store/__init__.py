"""The controller's database: models, migrations, and the queries over them.

``Store.open(url)`` then ``store.migrate()``; ``with store.write() as session:`` for
a transaction that writes, ``store.read()`` for one that only reads. Query helpers
live in :mod:`hpresil.store.repo`.
"""

from hpresil.store.db import Store
from hpresil.store.types import Clock, utcnow

__all__ = ["Clock", "Store", "utcnow"]
