"""The controller's fixtures (an app over a migrated store, on SQLite and PostgreSQL)."""

from tests.unit.controller.conftest import backend as backend
from tests.unit.controller.conftest import cfg as cfg
from tests.unit.controller.conftest import client as client
from tests.unit.controller.conftest import clock as clock
from tests.unit.controller.conftest import executor as executor
from tests.unit.controller.conftest import slurm as slurm
from tests.unit.controller.conftest import store as store
