"""What the controller's services raise for a request that cannot be served; the
HTTP layer maps each to a status code with a one-line detail."""

from __future__ import annotations

from hpresil.errors import HpresilError


class NotFound(HpresilError):
    """No such node or incident (404)."""


class Conflict(HpresilError):
    """The request goes against a rule hpresil keeps, e.g. resuming a node that
    someone else drained (409)."""
