"""The CLI tests' live controller (uvicorn on a free port) and configs pointing at it."""

from tests.unit.cli.conftest import backend as backend
from tests.unit.cli.conftest import cfg as cfg
from tests.unit.cli.conftest import clock as clock
from tests.unit.cli.conftest import config as config
from tests.unit.cli.conftest import config_for as config_for
from tests.unit.cli.conftest import controller as controller
from tests.unit.cli.conftest import executor as executor
from tests.unit.cli.conftest import slurm as slurm
from tests.unit.cli.conftest import store as store
