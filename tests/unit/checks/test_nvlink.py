"""The nvlink check: link states and error counter growth."""

from __future__ import annotations

from dataclasses import replace

from hpresil.checks.nvlink import NvlinkCheck
from hpresil.config.checks import NvlinkConfig
from hpresil.vocab import Action, Category, Status
from hpresil.vocab.gpu import GpuSample
from tests.unit.gpu.samples import T4, h100s, real, snap, steady, ticks


def _links(gpu: GpuSample, down: set[int] = frozenset(), **counters: dict[int, int]) -> GpuSample:  # type: ignore[assignment]
    assert gpu.nvlink is not None
    links = tuple(
        replace(
            link,
            active=link.link not in down,
            **{name: values.get(link.link, 0) for name, values in counters.items()},
        )
        for link in gpu.nvlink
    )
    return replace(gpu, nvlink=links)


def test_all_links_up_and_quiet_pass() -> None:
    results = NvlinkCheck().evaluate(snap(h100s(), steady(h100s())))
    assert {r.status for r in results} == {Status.OK}
    assert results[0].summary.endswith("18 links active")


def test_an_inactive_link_drains() -> None:
    gpu = _links(h100s()[0], down={7})
    (r,) = NvlinkCheck().evaluate(snap([gpu]))
    assert (r.status, r.action, r.category) == (
        Status.FAIL,
        Action.DRAIN,
        Category.NVLINK_NVSWITCH,
    )
    assert r.evidence["inactive"] == [7] and r.evidence["counters_judged"] is False


def test_no_link_active_warns_unless_links_are_expected() -> None:
    gpu = _links(h100s()[0], down=set(range(18)))
    (r,) = NvlinkCheck().evaluate(snap([gpu]))
    assert r.status is Status.WARN
    (r2,) = NvlinkCheck(NvlinkConfig(expected_links=18)).evaluate(snap([gpu]))
    assert r2.status is Status.FAIL and "0 of 18" in r2.summary


def test_one_replay_or_recovery_error_in_the_window_drains() -> None:
    before = h100s()[0]
    after = _links(before, replay={4: 1})
    history = ticks((before,), (after,))
    (r,) = NvlinkCheck().evaluate(snap([after], history))
    assert r.status is Status.FAIL and "NVLink 4: 1 replay errors" in r.summary
    assert r.evidence["errors"] == {"4": {"replay": 1}}
    later = ticks((after,), (after,))  # no growth since: fine again
    assert NvlinkCheck().evaluate(snap([after], later))[0].status is Status.OK


def test_crc_errors_fail_at_100_per_second() -> None:
    before = h100s()[0]
    fast = _links(before, crc_flit={2: 400}, crc_data={2: 100})  # 500 in 5 s
    (r,) = NvlinkCheck().evaluate(snap([fast], ticks((before,), (fast,))))
    assert r.status is Status.FAIL and "100 CRC errors/s" in r.summary
    slow = _links(before, crc_flit={2: 499})
    assert NvlinkCheck().evaluate(snap([slow], ticks((before,), (slow,))))[0].status is Status.OK


def test_gpus_without_nvlink_are_unsupported() -> None:
    (r,) = NvlinkCheck().evaluate(snap(real(T4)))
    assert r.status is Status.UNSUPPORTED
