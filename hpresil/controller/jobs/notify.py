"""Webhook events for job owners: a JSON POST to ``jobs.webhook_url``.

Sent by the remediation executor as ``notify`` actions, so a webhook that is down is
retried with the executor's back-off and a failure is recorded, not lost.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from hpresil.errors import HpresilError


class WebhookError(HpresilError):
    """The webhook did not accept the event (transient: retried)."""


def post(url: str, event: Mapping[str, Any], timeout_s: float) -> int:
    """POST ``event`` as JSON; the HTTP status. Raises WebhookError on failure."""
    body = json.dumps(event, sort_keys=True).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "hpresil"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        raise WebhookError(f"webhook {url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WebhookError(f"webhook {url} unreachable: {reason}") from None
