"""The recovery ladder's replace rung, as the executor runs its ``replace`` action: the
node, already drained by hpresil, gets a reason that says it waits for replacement
(``hpresil: #12 replace gpu_lost_pcie xid 79 gpu 3``), then the site's hook runs with
the incident (``recovery.replace_command``: its JSON on standard input;
``recovery.replace_webhook_url``: POSTed ``{"event": "node_replace", "incident": …}``).
A hook that fails raises :class:`HookFailed`, which the executor retries with its
back-off, so the hook runs at least once; the incident's id lets it tell a repeat.
Nothing resumes the node but an operator.
"""

from __future__ import annotations

import json
from typing import Any

from hpresil.adapters import proc
from hpresil.adapters.slurm import Slurm
from hpresil.config.recovery import RecoveryConfig
from hpresil.controller.jobs import notify
from hpresil.controller.policy import clip, one_line
from hpresil.controller.views import incident_view
from hpresil.errors import CommandError, HpresilError
from hpresil.store import Store
from hpresil.store.models import ActionRow

RAN = "hook_ran"  # the action's outcomes
NO_HOOK = "no_hook"  # marked; no hook configured
NOT_OURS = "not_ours"  # the node is no longer hpresil's: nothing done


class HookFailed(notify.WebhookError):
    """The replace command failed or its webhook did not take the event (retried)."""


def run(store: Store, slurm: Slurm, cfg: RecoveryConfig, action_id: int, reason: str) -> str:
    """Mark the action's node for replacement, then run the hook; the outcome."""
    with store.read() as s:
        action = s.get(ActionRow, action_id)
        if action is None or action.incident is None:
            raise HpresilError(f"replace action #{action_id} has no incident")
        node, incident = action.target, incident_view(action.incident).model_dump(mode="json")
    if not slurm.mark(node, marked(reason, incident["id"])):
        return NOT_OURS
    if not (cfg.replace_command or cfg.replace_webhook_url):
        return NO_HOOK
    hook(cfg, incident)
    return RAN


def marked(reason: str, incident: int) -> str:
    """The drain's reason with ``replace`` after the incident's number."""
    head = f"#{incident} "
    return clip(reason.replace(head, f"{head}replace ", 1) if head in reason else reason)


def hook(cfg: RecoveryConfig, incident: dict[str, Any]) -> None:
    if cfg.replace_command:
        try:
            proc.run(
                list(cfg.replace_command),
                timeout=cfg.replace_timeout_s,
                input_text=json.dumps(incident, sort_keys=True),
            )
        except CommandError as exc:
            raise HookFailed(f"replace command: {one_line(exc)}") from None
    if cfg.replace_webhook_url:
        event = {"event": "node_replace", "incident": incident}
        notify.post(cfg.replace_webhook_url, event, cfg.replace_timeout_s)
