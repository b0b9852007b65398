"""``dcgmi diag -j`` output to a :class:`~hpresil.dcgm.model.DiagReport`.

Shapes read (gpu-health.md s4; DCGM's ``dcgmi/Diag.cpp`` and
``testing/python3/dcgm_diag_schema.json``; recorded samples in tests/fixtures/dcgm):

* DCGM >= 4.0: ``{"DCGM Diagnostic": {"test_categories": [{"category", "tests":
  [{"name", "results": [{"entity_group", "entity_id", "status", "warnings": [{"warning",
  "error_id", "error_category", "error_severity"}], "info": [...]}], "test_summary":
  {"status", "warnings"?}}]}]}, "entity_groups": [...], "metadata": {"version", ...}}``;
* DCGM 2.x/3.x: top key ``"DCGM GPU Diagnostic"``, results carry ``gpu_id`` or
  ``gpu_ids`` strings (none for deployment tests), ``info`` is a string, and some
  releases spell a warning's text ``"warnings"``;
* a run that could not complete: ``{"<top key>": {"version", "runtime_error"}}``;
* ``--iterations N``: ``{"iterations": [<one run>, ...], "Overall Result": "Pass" |
  "Fail", "Warning"?}``, possibly after a runtime-error document of a failed iteration.

DCGM writes a warning result as "Fail" in JSON, so a finding's severity (not its
status word) decides how bad it is; Skip, "Not Run" and an empty status never fail
a run. An unknown status word is a warning, never a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpresil.dcgm import mapping
from hpresil.dcgm.model import DiagFinding, DiagReport, DiagResult, TestOutcome
from hpresil.errors import HpresilError
from hpresil.vocab import Action, Category, Status

KEY_4 = "DCGM Diagnostic"
KEY_3 = "DCGM GPU Diagnostic"
EXIT_ISOLATE = 205  # DCGM_ST_NVVS_ISOLATE_ERROR: a failure with ISOLATE severity
EXIT_FAILED = 226  # DCGM_ST_NVVS_ERROR: a test failed

_KINDS = {
    "pass": DiagResult.PASS,
    "fail": DiagResult.FAIL,
    "warn": DiagResult.WARN,
    "warning": DiagResult.WARN,
}
_SKIPPED = frozenset({"skip", "skipped", "not run", "notrun", ""})
_NOT_SUPPORTED = "<<<NOT_SUPPORTED>>>"


class DcgmParseError(HpresilError):
    """Output that is not a DCGM diagnostic or health document."""


def parse_diag(text: str, *, exit_code: int | None = None) -> DiagReport:
    """Read the whole stdout of ``dcgmi diag -j``; :class:`DcgmParseError` when it
    holds no diagnostic document."""
    docs = documents(text)
    runtime_errors = [e for d in docs if (e := _runtime_error(d))]
    main = next((d for d in docs if "iterations" in d), None)
    if main is not None:
        run = _iterations(main)
    else:
        main = next((d for d in docs if _top_key(d) is not None), None)
        if main is None:
            raise DcgmParseError(f"no DCGM diagnostic document in the output ({_excerpt(text)})")
        run = _Run.of(main)
    extra = [e for e in runtime_errors if e not in (run.runtime_error or "")]
    run.runtime_error = "; ".join(filter(None, [run.runtime_error, *extra])) or None
    run.add_exit_findings(exit_code)
    return run.report(exit_code)


def documents(text: str) -> list[dict[str, Any]]:
    """The JSON objects in ``text`` that start a line (dcgmi may print a banner or a
    second document); the first ``{`` when no line starts one."""
    starts = [m.start() for m in re.finditer(r"(?m)^\{", text)]
    if not starts and "{" in text:
        starts = [text.index("{")]
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    for start in starts:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


@dataclass
class _Run:
    format: str = "3.x"
    version: str | None = None
    driver_version: str | None = None
    tests: list[TestOutcome] = field(default_factory=list)
    findings: list[DiagFinding] = field(default_factory=list)
    gpus: set[int] = field(default_factory=set)
    serials: dict[int, str] = field(default_factory=dict)
    runtime_error: str | None = None
    iterations: int | None = None
    overall_result: str | None = None

    @classmethod
    def of(cls, doc: Mapping[str, Any], iteration: int | None = None) -> _Run:
        key = _top_key(doc)
        body = _dict(doc.get(key)) if key else {}
        meta = _dict(doc.get("metadata"))
        run = cls(
            format="4.x" if key == KEY_4 else "3.x",
            version=_str(meta.get("version") or doc.get("version") or body.get("version")),
            driver_version=_str(
                meta.get("Driver Version Detected") or doc.get("Driver Version Detected")
            ),
            serials=_serials(doc),
            runtime_error=_runtime_error(doc),
        )
        run.gpus.update(run.serials)
        for cat in _list(body.get("test_categories")):
            cat_name = _str(_dict(cat).get("category")) or ""
            for test in _list(_dict(cat).get("tests")):
                run._add_test(_dict(test), cat_name, iteration)
        return run

    def _add_test(self, test: Mapping[str, Any], cat: str, iteration: int | None) -> None:
        name = _str(test.get("name")) or "?"
        verdicts: list[DiagResult] = []
        for result in map(_dict, _list(test.get("results"))):
            gpus, entity = _entity(result)
            self.gpus.update(gpus)
            raw = _str(result.get("status")) or ""
            verdict = _verdict(raw)
            verdicts.append(verdict)
            if verdict in (DiagResult.FAIL, DiagResult.WARN, DiagResult.UNKNOWN):
                targets: list[int | None] = [*gpus] or [None]
                for gpu in targets:
                    where = entity if gpu is None else f"GPU {gpu}"
                    self._add_findings(result, name, cat, where, gpu, raw, iteration)
        summary = _dict(test.get("test_summary"))
        self._add_summary(summary, name, cat, verdicts, iteration)
        self.tests.append(_outcome(name, cat, verdicts, iteration))

    def _add_summary(
        self,
        summary: Mapping[str, Any],
        name: str,
        cat: str,
        verdicts: list[DiagResult],
        iteration: int | None,
    ) -> None:
        """Errors not tied to an entity live in the test summary (4.x); a summary that
        fails without any failed entity or message still counts."""
        if not summary:
            return
        raw = _str(summary.get("status")) or ""
        verdict = _verdict(raw)
        if _list(summary.get("warnings")) or (
            verdict in (DiagResult.FAIL, DiagResult.WARN) and verdict not in verdicts
        ):
            self._add_findings(summary, name, cat, "node", None, raw, iteration)
        verdicts.append(verdict)

    def _add_findings(
        self,
        result: Mapping[str, Any],
        test: str,
        cat: str,
        entity: str,
        gpu: int | None,
        raw: str,
        iteration: int | None,
    ) -> None:
        warnings = [_warning(w) for w in _list(result.get("warnings"))] or [_Warning()]
        for w in warnings:
            message = w.message or _no_message(test, raw)
            judged = mapping.judge(
                test,
                message,
                error_category=w.category,
                severity=w.severity,
                warn_only=_verdict(raw) is not DiagResult.FAIL,
            )
            action = Action.WATCH if judged.action is Action.NONE else judged.action
            self.findings.append(
                DiagFinding(
                    test=test,
                    test_category=cat,
                    entity=entity,
                    gpu=gpu,
                    serial=(self.serials.get(gpu) or None) if gpu is not None else None,
                    raw_status=raw,
                    status=mapping.status_for(action),
                    message=message[:1000],
                    error_id=w.error_id,
                    error_category=w.category,
                    error_severity=w.severity,
                    category=judged.category,
                    action=action,
                    xid=judged.xid,
                    iteration=iteration,
                )
            )

    def add_exit_findings(self, exit_code: int | None) -> None:
        """dcgmi's exit status speaks when the document does not (a stale iteration)."""
        worst = max((f.action.rank for f in self.findings), default=-1)
        if exit_code == EXIT_ISOLATE and worst < Action.DRAIN_NOW.rank:
            self._node_finding(
                "dcgmi exited 205: a failure with ISOLATE severity", Action.DRAIN_NOW
            )
        elif exit_code == EXIT_FAILED and not self.findings and not self.runtime_error:
            self._node_finding("dcgmi exited 226 (a test failed) but named no failure")
        elif self.overall_result == "Fail" and not self.findings and not self.runtime_error:
            self._node_finding("DCGM reported Overall Result Fail but named no failure")

    def _node_finding(self, message: str, action: Action = Action.WATCH) -> None:
        self.findings.append(
            DiagFinding(
                test="dcgmi",
                raw_status="Fail",
                status=mapping.status_for(action),
                message=message,
                category=Category.UNKNOWN,
                action=action,
            )
        )

    def report(self, exit_code: int | None) -> DiagReport:
        overall = self._overall()
        return DiagReport(
            format=self.format,
            overall=overall,
            summary=self._summary(overall),
            version=self.version,
            driver_version=self.driver_version,
            tests=tuple(self.tests),
            findings=tuple(self.findings),
            gpus=tuple(sorted(self.gpus)),
            serials=tuple((g, s) for g, s in sorted(self.serials.items()) if s),
            runtime_error=self.runtime_error,
            iterations=self.iterations,
            overall_result=self.overall_result,
            exit_code=exit_code,
        )

    def _overall(self) -> DiagResult:
        statuses = {f.status for f in self.findings}
        if Status.FAIL in statuses:
            return DiagResult.FAIL
        if self.runtime_error or not any(not t.skipped for t in self.tests):
            return DiagResult.UNKNOWN
        return DiagResult.WARN if Status.WARN in statuses else DiagResult.PASS

    def _summary(self, overall: DiagResult) -> str:
        ran = sum(1 for t in self.tests if not t.skipped)
        skipped = len({t.name for t in self.tests if t.skipped})
        text = f"DCGM diag {overall.value}: {ran} tests run, {skipped} skipped"
        if self.runtime_error:
            text += f"; did not complete: {self.runtime_error.strip().splitlines()[0]}"
        bad = [f for f in self.findings if f.status is not Status.OK]
        if bad:
            shown = "; ".join(f"{f.entity} {f.test}: {f.message}" for f in bad[:3])
            more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
            text += f"; {shown}{more}"
        return text[:500]


def _iterations(doc: Mapping[str, Any]) -> _Run:
    runs = [
        _Run.of(_dict(one), iteration=i)
        for i, one in enumerate(_list(doc.get("iterations")), start=1)
        if isinstance(one, dict)
    ]
    merged = _Run(iterations=len(_list(doc.get("iterations"))))
    merged.overall_result = _str(doc.get("Overall Result"))
    errors = [r.runtime_error for r in runs if r.runtime_error]
    warning = _str(doc.get("Warning"))  # dcgmi's error string for the failed iteration
    if merged.overall_result == "Fail" and warning and not any(r.findings for r in runs):
        errors.append(warning)
    merged.runtime_error = "; ".join(e for e in errors if e) or None
    for run in runs:
        merged.format = run.format
        merged.version = merged.version or run.version
        merged.driver_version = merged.driver_version or run.driver_version
        merged.tests += run.tests
        merged.findings += run.findings
        merged.gpus |= run.gpus
        merged.serials |= run.serials
    return merged


@dataclass(frozen=True)
class _Warning:
    message: str = ""
    error_id: int | None = None
    category: int | None = None
    severity: int | None = None


def _warning(item: Any) -> _Warning:
    if not isinstance(item, dict):
        return _Warning(message=str(item))
    text = item.get("warning", item.get("warnings", ""))  # some 3.x releases: "warnings"
    return _Warning(
        message=str(text).strip(),
        error_id=_int(item.get("error_id")),
        category=_int(item.get("error_category")),
        severity=_int(item.get("error_severity")),
    )


def _entity(result: Mapping[str, Any]) -> tuple[list[int], str]:
    """The GPU ids a result is about, and how to name its entity."""
    group = _str(result.get("entity_group"))
    ent = _int(result.get("entity_id"))
    if group is not None or ent is not None:
        is_gpu = group == "GPU" or (group is None and _int(result.get("entity_group_id")) == 1)
        if is_gpu and ent is not None:
            return [ent], f"GPU {ent}"
        return [], f"{group or 'entity'} {'' if ent is None else ent}".strip()
    raw = result.get("gpu_id", result.get("gpu_ids"))
    ids = [_int(x) for x in str(raw).split(",")] if raw is not None else []
    gpus = [i for i in ids if i is not None]
    return gpus, ", ".join(f"GPU {g}" for g in gpus) or "node"


def _serials(doc: Mapping[str, Any]) -> dict[int, str]:
    found: dict[int, str] = {}
    for group in map(_dict, _list(doc.get("entity_groups"))):  # 4.x
        if group.get("entity_group") != "GPU" and _int(group.get("entity_group_id")) != 1:
            continue
        for ent in map(_dict, _list(group.get("entities"))):
            gpu, serial = _int(ent.get("entity_id")), _str(ent.get("serial_num"))
            if gpu is not None:
                found[gpu] = "" if serial in (None, _NOT_SUPPORTED) else serial
    for key, value in _dict(doc.get("GPU Device Serials")).items():  # 3.x
        if (idx := _int(key)) is not None and isinstance(value, str):
            found[idx] = value
    return found


def _outcome(name: str, cat: str, verdicts: list[DiagResult], iteration: int | None) -> TestOutcome:
    ran = [v for v in verdicts if v is not DiagResult.SKIP]
    worst = max(ran, key=_ORDER.index, default=DiagResult.SKIP)
    result = DiagResult.WARN if worst is DiagResult.UNKNOWN else worst  # an unknown word warns
    return TestOutcome(name=name, test_category=cat, result=result, iteration=iteration)


_ORDER = [DiagResult.PASS, DiagResult.WARN, DiagResult.UNKNOWN, DiagResult.FAIL]


def _verdict(raw: str) -> DiagResult:
    """PASS, FAIL, WARN or SKIP; an unknown status word is UNKNOWN (never a pass)."""
    word = raw.strip().lower()
    if word in _SKIPPED:
        return DiagResult.SKIP
    return _KINDS.get(word, DiagResult.UNKNOWN)


def _top_key(doc: Mapping[str, Any]) -> str | None:
    return next((k for k in (KEY_4, KEY_3) if isinstance(doc.get(k), dict)), None)


def _runtime_error(doc: Mapping[str, Any]) -> str | None:
    key = _top_key(doc)
    return _str(_dict(doc.get(key)).get("runtime_error")) if key else None


def _no_message(test: str, raw: str) -> str:
    return f"{test}: {raw or 'no status'} without a message"


def _excerpt(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return repr(first[:120]) if first else "empty"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
