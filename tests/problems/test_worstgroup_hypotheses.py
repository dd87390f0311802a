"""The worst-group hypotheses' decision functions on constructed results (a held and a not-held
case each), the thread-count verdict comparison, and the publisher's blocks and ``--check``."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minimax_problems.stats import mean_interval, paired_difference
from minimax_problems.worstgroup import publish
from minimax_problems.worstgroup.hypotheses import (
    DELTA,
    HYPOTHESES,
    TIE_GROUPS,
    changed_verdicts,
    decide,
    decide_all,
)

OTHERS = ("erm", "danskin", "group_dro")


def _paired(diffs: list[float], higher: bool = False) -> dict[str, Any]:
    """A paired entry whose per-seed differences DDi − other are ``diffs``."""
    return paired_difference(diffs, [0.0] * len(diffs), higher)


def _block(
    loss: list[float],
    acc: list[float],
    trees: list[float],
    went_up: list[float],
    active: list[float],
    loss_at_cpu: list[float] | None = None,
) -> dict[str, Any]:
    """A setting's block with the given per-seed differences DDi − every other rule."""
    metrics = {
        "worst_group_train_loss": _paired(loss),
        "worst_group_train_loss_at_cpu": _paired(loss_at_cpu or loss),
        "worst_group_test_acc": _paired(acc, True),
    }
    paired: dict[str, Any] = {o: copy.deepcopy(metrics) for o in OTHERS}
    paired["trees"] = {"worst_group_test_acc": _paired(trees, True)}
    runs = [{"rules": {"ddi": {"went_up_fraction": w}}} for w in went_up]
    return {"paired": paired, "runs": runs, "ddi_active_groups": mean_interval(active)}


GOOD = dict(
    loss=[-0.02, -0.03, -0.025],
    acc=[0.0, 0.004, -0.002],
    trees=[-0.03, -0.02, -0.025],
    went_up=[0.0, 0.0, 0.0],
)
BAD = dict(
    loss=[-0.02, 0.03, 0.01],
    acc=[-0.05, -0.04, -0.06],
    trees=[0.01, -0.02, 0.02],
    went_up=[0.0, 0.01, 0.0],
)


def _results(case: dict[str, list[float]], ties: bool) -> dict[str, Any]:
    many, one = [3.0, 3.2, 2.9], [1.05, 1.1, 1.02]
    return {
        "adult": {"settings": {"mlp-full": _block(**case, active=one if ties else many)}},
        "mnist1d": {"settings": {"mlp-full": _block(**case, active=many if ties else one)}},
    }


@pytest.mark.parametrize("name", list(HYPOTHESES))
def test_each_hypothesis_has_a_held_and_a_not_held_case(name: str) -> None:
    held = decide(name, _results(GOOD, ties=True))
    assert held["held"] and all(c["held"] for c in held["cells"])
    assert not decide(name, _results(BAD, ties=False))["held"]


def test_h3_applies_to_adult_only_and_h2_uses_its_margin() -> None:
    assert [c["dataset"] for c in decide("H3", _results(GOOD, True))["cells"]] == ["adult"]
    with pytest.raises(ValueError, match="applies to none"):
        decide("H3", {"mnist1d": _results(GOOD, True)["mnist1d"]})
    just_inside = _results({**GOOD, "acc": [-DELTA / 4, -DELTA / 3, -DELTA / 5]}, True)
    assert decide("H2", just_inside)["held"]
    assert TIE_GROUPS > 1
    with pytest.raises(ValueError, match="unknown hypothesis"):
        decide("H9", just_inside)


def test_h5_reads_the_equal_cpu_time_metric() -> None:
    results = _results(GOOD, True)
    slow = _block(**GOOD, active=[3.0, 3.1, 3.2], loss_at_cpu=[0.02, 0.03, 0.01])
    results["mnist1d"]["settings"]["mlp-full"] = slow
    assert decide("H1", results)["held"] and not decide("H5", results)["held"]


def test_changed_verdicts_lists_only_what_changed() -> None:
    good = _results(GOOD, True)
    assert changed_verdicts(good, copy.deepcopy(good)) == ([], changed_verdicts(good, good)[1])
    flipped = copy.deepcopy(good)
    flipped["adult"]["settings"]["mlp-full"]["paired"]["danskin"]["worst_group_train_loss"] = (
        _paired(BAD["loss"])
    )
    changed, compared = changed_verdicts(good, flipped)
    assert compared > 10
    assert "H1 on adult mlp-full: held → did not hold" in changed
    assert any("DDi vs danskin, worst_group_train_loss, on adult mlp-full" in c for c in changed)
    assert len(decide_all(good)) == len(HYPOTHESES)


def test_docs_agree_with_the_committed_results() -> None:
    results = publish.load(publish.RESULTS)
    generated = publish.blocks(results, publish.load(publish.OTHER_THREADS))
    for rel, names in publish.TARGETS.items():
        text = (publish.ROOT / rel).read_text(encoding="utf-8")
        assert publish.render(text, generated, names) == text, (
            f"{rel} is stale: run python -m minimax_problems.worstgroup.publish"
        )
    assert publish.main(["--check"]) == 0


def test_publish_check_finds_a_stale_block(tmp_path) -> None:
    for rel in publish.TARGETS:
        page = tmp_path / rel
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text((publish.ROOT / rel).read_text(encoding="utf-8"))
    readme = tmp_path / "README.md"
    readme.write_text(
        readme.read_text().replace(
            "<!-- worstgroup:summary -->\n", "<!-- worstgroup:summary -->\nstale\n"
        )
    )
    assert publish.main(["--check", "--root", str(tmp_path)]) == 1
    assert publish.main(["--root", str(tmp_path)]) == 0  # rewrites: no results there
    assert publish.main(["--check", "--root", str(tmp_path)]) == 0
    assert publish.NOT_RUN in readme.read_text()
    with pytest.raises(ValueError, match="worstgroup:findings"):
        publish.render("no markers", {"findings": "x"})
