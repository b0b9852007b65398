"""Site overrides of the XID table (:mod:`hpresil.vocab.xids`): another first action or
category for an XID or NVSwitch SXid, and an escalation when it recurs.

TOML section ``[xid]``::

    [xid.overrides.63]        # XID 63 is WATCH ...
    count = 3                 # ... but 3 times within 24 h on one GPU
    window_s = 86400
    then = "drain"            # ... drains the node

    [xid.overrides.94]
    action = "drain"          # replace the table's first action
    category = "hbm_ecc"      # and/or its category

    [xid.sxid_overrides.20034]  # the same, for one NVSwitch SXid number
    action = "drain_now"

Actions: none, watch, drain, drain_now, reset_gpu, reboot, replace. Categories: the
values of :class:`~hpresil.vocab.Category`. ``count``, ``window_s`` and ``then`` go
together; the escalation never lowers an action.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hpresil.vocab import Action, Category
from hpresil.vocab.xids import APPLICATION_XIDS


class XidOverride(BaseModel):
    """A site's policy for one XID (or SXid): another first action or category, and
    an escalation when it recurs ``count`` times within ``window_s`` on one device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Action | None = None
    category: Category | None = None
    count: int | None = Field(default=None, ge=1)
    window_s: float | None = Field(default=None, gt=0)
    then: Action | None = None

    @model_validator(mode="after")
    def _escalation_is_whole(self) -> Self:
        given = [v is not None for v in (self.count, self.window_s, self.then)]
        if any(given) and not all(given):
            raise ValueError("count, window_s and then go together")
        return self


class XidPolicyConfig(BaseModel):
    """Site overrides of the table (TOML section ``[xid]``; see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overrides: dict[int, XidOverride] = Field(default_factory=dict)
    sxid_overrides: dict[int, XidOverride] = Field(default_factory=dict)

    @field_validator("overrides")
    @classmethod
    def _applications_never_drain(cls, value: dict[int, XidOverride]) -> dict[int, XidOverride]:
        for xid, o in sorted(value.items()):
            if xid in APPLICATION_XIDS and any(
                a is not None and a.drains for a in (o.action, o.then)
            ):
                raise ValueError(
                    f"XID {xid} is an application error and never drains a node by itself "
                    "(its action can be at most watch)"
                )
        return value

    def override(self, kind: Literal["xid", "sxid"], number: int) -> XidOverride | None:
        return (self.sxid_overrides if kind == "sxid" else self.overrides).get(number)

    @property
    def longest_window_s(self) -> float:
        windows = [
            o.window_s
            for o in (*self.overrides.values(), *self.sxid_overrides.values())
            if o.window_s is not None
        ]
        return max(windows, default=0.0)
