"""The HTTP client for the controller's API, used by the agent and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from hpresil import api
from hpresil.auth import read_token
from hpresil.config import Config
from hpresil.errors import ControllerUnavailable, RejectedByController
from hpresil.vocab import Report

T = TypeVar("T")


class ControllerClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 5.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._base = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self._base, headers=headers, timeout=timeout)

    @classmethod
    def from_config(cls, cfg: Config, *, token_required: bool = True) -> ControllerClient:
        token = read_token(Path(cfg.controller.token_file), required=token_required)
        return cls(cfg.controller.url, token, cfg.controller.request_timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- agent ---
    def post_report(self, report: Report) -> api.ReportAck:
        body = report.model_dump(mode="json")
        return self._call("POST", "/v1/reports", api.ReportAck, json=body)

    # --- CLI ---
    def nodes(self) -> list[api.NodeView]:
        return self._call("GET", "/v1/nodes", list[api.NodeView])

    def incidents(self, status: str = "all", node: str | None = None) -> list[api.IncidentView]:
        params = {"status": status, **({"node": node} if node else {})}
        return self._call("GET", "/v1/incidents", list[api.IncidentView], params=params)

    def incident(self, incident_id: int) -> api.IncidentView:
        return self._call("GET", f"/v1/incidents/{incident_id}", api.IncidentView)

    def mttf(self, by: str = "all") -> api.MttfView:
        return self._call("GET", "/v1/stats/mttf", api.MttfView, params={"by": by})

    def drain(self, node: str, reason: str) -> api.DrainAnswer:
        body = api.DrainRequest(reason=reason).model_dump()
        return self._call("POST", f"/v1/nodes/{node}/drain", api.DrainAnswer, json=body)

    def resume(self, node: str) -> api.ResumeAnswer:
        return self._call("POST", f"/v1/nodes/{node}/resume", api.ResumeAnswer)

    def _call(self, method: str, path: str, kind: type[T] | Any, **kw: Any) -> T:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ControllerUnavailable(f"controller {self._base} unreachable: {exc}") from exc
        if resp.status_code >= 500:
            raise ControllerUnavailable(
                f"controller {self._base} answered {resp.status_code}: {_detail(resp)}"
            )
        if resp.status_code >= 400:
            raise RejectedByController(resp.status_code, _detail(resp))
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind.model_validate(resp.json())  # type: ignore[return-value]
        result: T = TypeAdapter(kind).validate_python(resp.json())
        return result


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    return str(detail).strip().splitlines()[0] if str(detail).strip() else resp.reason_phrase
