"""The job comment spec: hpresil's one token among other text, and every malformed form."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpresil.job.spec import JobSpec, comment_field, parse_comment


def test_full_token_among_other_text() -> None:
    spec, problems = parse_comment("team=vision hpresil:ckpt=/lustre/me/run1,budget=3,hang=600 x")
    assert spec == JobSpec(ckpt_dir=Path("/lustre/me/run1"), budget=3, hang_s=600.0)
    assert problems == []


@pytest.mark.parametrize("comment", ["", "(null)", "just a note", "nothpresil:ckpt=/x"])
def test_no_token_is_an_empty_spec_without_problems(comment: str) -> None:
    assert parse_comment(comment) == (JobSpec(), [])


@pytest.mark.parametrize(
    ("hang", "seconds"), [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0)]
)
def test_hang_units(hang: str, seconds: float) -> None:
    assert parse_comment(f"hpresil:hang={hang}")[0].hang_s == seconds


def test_budget_zero_is_valid() -> None:
    assert parse_comment("hpresil:budget=0") == (JobSpec(budget=0), [])


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("hpresil:ckpt=run1", "ckpt='run1': must be an absolute path"),
        ("hpresil:budget=-1", "budget='-1': must be a whole number"),
        ("hpresil:budget=two", "budget='two': must be a whole number"),
        ("hpresil:budget=²", "budget='²': must be a whole number"),
        ("hpresil:hang=0", "hang='0': must be more than 0 seconds"),
        ("hpresil:hang=nan", "hang='nan': must be more than 0 seconds"),
        ("hpresil:hang=soon", "hang='soon': must be seconds"),
        ("hpresil:ckpt", "'ckpt' is not key=value"),
        ("hpresil:ckpt=", "'ckpt=' is not key=value"),
        ("hpresil:retries=3", "unknown key 'retries' (valid: budget, ckpt, hang)"),
    ],
)
def test_a_malformed_value_is_one_line_and_leaves_the_key_unset(token: str, expected: str) -> None:
    spec, problems = parse_comment(token)
    assert spec == JobSpec()
    assert len(problems) == 1 and expected in problems[0] and "\n" not in problems[0]


def test_valid_keys_survive_a_bad_neighbour() -> None:
    spec, problems = parse_comment("hpresil:ckpt=/x,budget=lots,hang=5m")
    assert spec == JobSpec(ckpt_dir=Path("/x"), budget=None, hang_s=300.0)
    assert len(problems) == 1 and "budget" in problems[0]


def test_repeated_key_and_second_token_keep_the_first() -> None:
    spec, problems = parse_comment("hpresil:budget=1,budget=2 hpresil:budget=9")
    assert spec.budget == 1
    assert any("given twice" in p for p in problems)
    assert any("2 hpresil: tokens" in p for p in problems)


def test_empty_items_between_commas_are_ignored() -> None:
    assert parse_comment("hpresil:,budget=2,,") == (JobSpec(budget=2), [])


def test_comment_field_from_scontrol_one_liner() -> None:
    fixture = Path(__file__).resolve().parents[2] / "fixtures/slurm/scontrol-show-job-22.05.txt"
    line = fixture.read_text().splitlines()[0]
    assert comment_field(line) is None  # the recorded job has no comment
    cut = line.index(" StdErr=")
    comment = " Comment=run one hpresil:ckpt=/lustre/me/run1,budget=3 "
    commented = line[:cut] + comment + line[cut:]
    assert comment_field(commented) == "run one hpresil:ckpt=/lustre/me/run1,budget=3"
    assert parse_comment(comment_field(commented) or "")[0].budget == 3


def test_comment_field_ignores_admin_and_system_comments() -> None:
    line = (
        "JobId=7 WorkDir=/w AdminComment=hpresil:ckpt=/admin SystemComment=s "
        "Comment=hpresil:ckpt=/mine StdErr=/o StdIn=/dev/null StdOut=/o"
    )
    assert comment_field(line) == "hpresil:ckpt=/mine"
