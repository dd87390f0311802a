"""``minimax demo --quick`` end to end: files, report numbers against summary.json, determinism;
the statistics sentences; the README/docs blocks against the committed summary."""

from __future__ import annotations

import contextlib
import html
import io
import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest

from minimax_problems import demo

PNGS = [
    "counterexample.png",
    "elu_toy.png",
    *(
        f"digits_{setting}_{name}.png"
        for setting in ("smooth", "relu_bn")
        for name in ("accuracy", "certified")
    ),
]
#: every part, each named by --part (the quick run covers them all)
ALL_PARTS = ["--part=counterexample", "--part=elu", "--part=worstclass", "--part=digits"]
ALL_PARTS.append("--part=digits-bn")


def _run_cli(argv: list[str]) -> int:
    from minimax_problems.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert _run_cli(["demo", "--quick", "--no-progress", "--out", str(out), *ALL_PARTS]) == 0
    (out / "stdout.txt").write_text(stdout.getvalue(), encoding="utf-8")
    return out


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


class _Tables(HTMLParser):
    """The cells of every <table> (header row included) and the <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(out: Path) -> tuple[_Tables, str]:
    text = (out / "report.html").read_text(encoding="utf-8")
    parser = _Tables()
    parser.feed(text)
    return parser, html.unescape(text)


def test_quick_writes_every_file(quick_run: Path) -> None:
    for name in [*PNGS, "report.html", "summary.json"]:
        path = quick_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    summary = _summary(quick_run)
    assert summary["config"]["seeds"] == [0, 1]  # --quick: two seeds by default
    from minimax_problems.demo.digits import SETTING_RULES

    assert SETTING_RULES["smooth"] == (
        "danskin",
        "maxloss",
        "ddi",
        "ddi-example",
        "ddi-certified",
    )
    for seed in (0, 1):
        for setting, rules in SETTING_RULES.items():
            for rule in rules:
                run = quick_run / "runs" / f"seed{seed}" / f"{setting}-{rule}"
                assert (run / "metrics.jsonl").is_file()
    parsed, _ = _parse(quick_run)
    assert sorted(parsed.images) == sorted(PNGS)  # every figure is shown, none is missing
    assert set(summary) >= {"config", "counterexample", "elu", "worstclass", "digits", "timings"}
    assert set(summary["digits"]["settings"]) == {"smooth"}
    assert set(summary["digits-bn"]["settings"]) == {"relu_bn"}
    blocks = [*summary["digits"]["settings"].values(), *summary["digits-bn"]["settings"].values()]
    for block in blocks:
        assert len(block["runs"]) == 2
        for runs in block["runs"]:
            for res in runs.values():
                assert len(res["epochs"]) == summary["digits"]["epochs"]
                for record in res["epochs"]:
                    for key in ("clean_acc", "robust_acc", "went_up_fraction", "mean_norm"):
                        assert record[key] is not None, key
        for metric, entry in block["rules"]["ddi"].items():
            values = [runs["ddi"][metric] for runs in block["runs"]]
            assert entry["mean"] == pytest.approx(sum(values) / 2)
    assert summary["worstclass"]["seeds"] == [0, 1]
    assert [r["seed"] for r in summary["elu"]["runs"]] == [0, 1]


def test_stdout_has_the_summary_table(quick_run: Path) -> None:
    stdout = (quick_run / "stdout.txt").read_text(encoding="utf-8")
    for heading, header, rows in demo.summary_tables(_summary(quick_run)):
        assert heading in stdout
        assert demo.format_table(header, rows) in stdout


def test_report_numbers_match_summary(quick_run: Path) -> None:
    summary = _summary(quick_run)
    parsed, text = _parse(quick_run)
    # the tables in the page are the summary's tables, cell for cell
    expected = demo.summary_tables(summary)
    assert len(parsed.tables) == len(expected)
    for got, (_, header, rows) in zip(parsed.tables, expected, strict=True):
        assert got[0] == list(header)
        assert got[1:] == [list(r) for r in rows]
    # every sentence the report states is generated from summary.json
    for sentences in demo.findings(summary).values():
        for sentence in sentences:
            assert sentence in text, sentence
    # spot checks of numbers, independently of the generators
    ce = summary["counterexample"]
    assert f"{ce['danskin']['phi_after_first_step']:.4f}" in text
    assert f"{ce['ddi']['final_phi']:.4f}" in text
    for part, setting in (("digits", "smooth"), ("digits-bn", "relu_bn")):
        entry = summary[part]["settings"][setting]["rules"]["ddi"]["final_robust_acc"]
        assert f"DDi {entry['mean']:.3f} (95% CI {entry['low']:.3f} to {entry['high']:.3f})" in text
    # a quick run says so, and names no winner anywhere
    assert "too short to compare" in text
    assert "significantly" not in text
    assert "not compared (quick run)" in text
    for _, header, rows in demo.summary_tables(summary):
        if "verdict" in header:
            assert {row[-1] for row in rows} == {"not compared (quick run)"}


def test_counterexample_numbers_come_from_the_library(quick_run: Path) -> None:
    ce = _summary(quick_run)["counterexample"]
    one = ce["one_step"]
    assert one["ddi_weight_y0"] == pytest.approx(0.5, abs=1e-6)
    assert one["ddi_weight_y1"] == pytest.approx(0.5, abs=1e-6)
    assert sum(one["ddi_weights"]) == pytest.approx(1.0, abs=1e-6)
    assert one["ddi_direction"] == pytest.approx([2.0, 0.0], abs=1e-9)
    assert [abs(v) for v in one["danskin_direction"]] == pytest.approx([2.0, 2.0])
    for row in one["table"]:
        assert row["phi_danskin"] == pytest.approx(row["closed_form_danskin"], abs=1e-9)
        assert row["phi_ddi"] == pytest.approx(row["closed_form_ddi"], abs=1e-9)
    assert ce["danskin"]["phi_after_first_step"] > 2.0 > ce["ddi"]["phi_after_first_step"]


def test_same_seed_same_summary(quick_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert _run_cli(["demo", "--quick", "--no-progress", "--out", str(again), *ALL_PARTS]) == 0
    first, second = _summary(quick_run), _summary(again)
    assert demo.strip_times(first) == demo.strip_times(second)
    assert "timings" not in demo.strip_times(first)


def test_strip_times_removes_wall_clock_fields() -> None:
    data = {"a": 1, "wall": 2.0, "b": [{"seconds": 1, "c": 3}], "timings": {"x": 1}}
    assert demo.strip_times(data) == {"a": 1, "b": [{"c": 3}]}


def test_summary_differences_ignore_wall_clock_only(quick_run: Path, tmp_path: Path) -> None:
    from minimax_problems.demo.compare import main, summary_differences

    summary = _summary(quick_run)
    changed = json.loads(json.dumps(summary))
    changed["timings"]["total"] += 1.0  # wall-clock: ignored
    assert summary_differences(summary, changed) == []
    changed["counterexample"]["ddi"]["final_phi"] += 1e-6  # a number: reported
    assert summary_differences(summary, changed) == [
        "$.counterexample.ddi.final_phi: "
        f"{summary['counterexample']['ddi']['final_phi']!r} != "
        f"{changed['counterexample']['ddi']['final_phi']!r}"
    ]
    other = tmp_path / "summary.json"
    other.write_text(json.dumps(changed), encoding="utf-8")
    assert main([str(quick_run / "summary.json"), str(quick_run / "summary.json")]) == 0
    assert main([str(quick_run / "summary.json"), str(other)]) == 1


# ---------------------------------------------------------------------------------------------
# the statistics sentences: the verdict follows the paired 95% interval
# ---------------------------------------------------------------------------------------------

_CASES = [
    # (low, high, p, quick, verdict)
    (-0.02, 0.03, 0.4, False, "no significant difference"),  # covers 0
    (0.0, 0.03, 0.05, False, "no significant difference"),  # touches 0
    (0.01, 0.03, 0.01, False, "DDi significantly higher"),
    (-0.03, -0.01, 0.01, False, "DDi significantly lower"),
    (0.01, 0.01, None, False, "no significant difference"),  # same difference on every seed
    (None, None, None, False, "no significant difference"),  # one seed
    (0.01, 0.03, 0.01, True, "not compared (quick run)"),  # quick runs never compare
    (-0.02, 0.03, 0.4, True, "not compared (quick run)"),
]


@pytest.mark.parametrize(("low", "high", "p", "quick", "verdict"), _CASES)
def test_verdict_follows_the_interval(low, high, p, quick, verdict) -> None:
    from minimax_problems.demo.verdicts import difference_text, verdict_text

    entry = {"mean": 0.02 if low is None else (low + high) / 2, "low": low, "high": high, "p": p}
    assert verdict_text(entry, quick) == verdict
    assert difference_text(entry, ".3f", quick).endswith(f": {verdict}")


@pytest.mark.parametrize(
    ("ddi", "other", "higher", "verdict"),
    [
        ([0.80, 0.82, 0.79], [0.70, 0.71, 0.69], True, "DDi better"),
        ([0.80, 0.82, 0.79], [0.70, 0.71, 0.69], False, "DDi worse"),
        ([0.80, 0.70, 0.75], [0.75, 0.76, 0.74], True, "no significant difference"),
        ([0.8, 0.7], [0.7, 0.6], True, "no significant difference"),  # identical differences
        ([0.8], [0.7], True, "no significant difference"),  # one seed: no interval
    ],
)
def test_paired_difference_verdicts(ddi, other, higher, verdict) -> None:
    from scipy import stats

    from minimax_problems.stats import paired_difference

    out = paired_difference(ddi, other, higher)
    assert out["verdict"] == verdict
    if out["p"] is not None:
        assert out["p"] == pytest.approx(stats.ttest_rel(ddi, other).pvalue)
        assert (out["p"] < 0.05) == (not out["low"] <= 0 <= out["high"])  # test ⇔ interval


def test_mean_interval_checks_its_input() -> None:
    from minimax_problems.stats import mean_interval

    with pytest.raises(ValueError, match="values is empty"):
        mean_interval([])
    assert mean_interval([1.0])["low"] is None


def test_seeds_and_parts_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeds must be a positive integer"):
        demo.run_demo(tmp_path, quick=True, seeds=0, progress=False)
    with pytest.raises(ValueError, match="unknown demo parts"):
        demo.run_demo(tmp_path, quick=True, parts=("elu-toy",), progress=False)


def test_one_part_with_three_seeds(tmp_path: Path) -> None:
    summary = demo.run_demo(
        tmp_path, quick=True, seeds=3, seed=5, parts=("worstclass",), progress=False
    )
    assert summary["config"]["seeds"] == [5, 6, 7]
    paired = summary["worstclass"]["paired"]["danskin"]["worst_class_test_acc"]
    assert len(paired["diffs"]) == 3
    assert set(summary) == {"config", "timings", "worstclass"}


# ---------------------------------------------------------------------------------------------
# the README and docs blocks are generated from the committed summary
# ---------------------------------------------------------------------------------------------


def test_readme_and_docs_agree_with_the_committed_summary() -> None:
    from minimax_problems.demo import publish

    summary = json.loads((publish.ROOT / publish.SUMMARY).read_text(encoding="utf-8"))
    assert summary["config"]["quick"] is False
    other = None
    if (publish.ROOT / publish.OTHER_THREADS).is_file():  # the thread-count comparison
        other = json.loads((publish.ROOT / publish.OTHER_THREADS).read_text(encoding="utf-8"))
        assert other["config"]["seeds"] == summary["config"]["seeds"]
        assert other["config"]["threads"] != summary["config"]["threads"]
    q1, q2 = (
        json.loads((publish.ROOT / p).read_text(encoding="utf-8")) for p in publish.QUICK_THREADS
    )
    assert q1["config"]["threads"] == 1 and q2["config"]["threads"] == 2
    on_request = {}
    for part, rel in publish.ON_REQUEST.items():
        run = json.loads((publish.ROOT / rel).read_text(encoding="utf-8"))
        assert run["config"]["quick"] is False and run["config"]["parts"] == [part]
        on_request[part] = run
    generated = publish.blocks(summary, other, (q1, q2), on_request)
    for rel, names in publish.TARGETS.items():
        text = (publish.ROOT / rel).read_text(encoding="utf-8")
        assert publish.render(text, generated, names) == text, (
            f"{rel} is stale: run python -m minimax_problems.demo.publish"
        )
    assert publish.main(["--check"]) == 0  # regenerating changes nothing


def test_publish_replaces_blocks_and_names_a_missing_one(tmp_path: Path, quick_run: Path) -> None:
    from minimax_problems.demo import publish

    generated = publish.blocks(_summary(quick_run))
    text = "intro\n<!-- demo:tables -->\nold\n<!-- /demo:tables -->\nend\n"
    new = publish.render(text, generated, ["tables"])
    assert new.startswith("intro\n<!-- demo:tables -->\n**") and new.endswith("end\n")
    assert "old" not in new and publish.render(new, generated, ["tables"]) == new
    with pytest.raises(ValueError, match="demo:findings"):
        publish.render(text, generated, ["findings"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "".join(text.replace("tables", n) for n in publish.TARGETS["README.md"]), encoding="utf-8"
    )
    (tmp_path / "docs" / "reproducing.md").write_text(
        "".join(text.replace("tables", n) for n in publish.TARGETS["docs/reproducing.md"]),
        encoding="utf-8",
    )
    argv = [
        "--root",
        str(tmp_path),
        "--summary",
        str(quick_run / "summary.json"),
        "--other-threads",
        str(tmp_path / "absent.json"),
    ]
    assert publish.main([*argv, "--check"]) == 1
    assert publish.main(argv) == 0
    assert publish.main([*argv, "--check"]) == 0
    assert "not compared (quick run)" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_differences_by_part_counts_and_measures() -> None:
    from minimax_problems.demo.compare import differences_by_part

    a = {"x": {"v": [1.0, 2.0, 3]}, "y": {"w": 0.5, "wall": 1.0}, "config": {"quick": True}}
    b = {"x": {"v": [1.0, 2.5, 3]}, "y": {"w": 0.5, "wall": 9.0}, "config": {"quick": True}}
    out = differences_by_part(a, b)
    assert out["x"] == {"numbers": 3, "differ": 1, "max_abs": 0.5}
    assert out["y"] == {"numbers": 1, "differ": 0, "max_abs": 0.0}  # wall-clock aside
    assert out["config"]["numbers"] == 0  # booleans are not numbers


def test_paper_toy_candidates_stay_near_the_corners() -> None:
    import torch

    from minimax_problems.demo.conflict import CornerAscent, PaperELU

    toy = PaperELU(seed=0)
    assert toy.model[2].bias is None  # the paper's network has no output bias
    cands = CornerAscent(restarts=10, steps=10, step_size=0.1, seed=0)(
        toy.problem, toy.params(), toy.batch
    )
    assert cands.deltas.shape == (10, 100, 2)
    assert float(cands.deltas.abs().max()) <= 1.0
    # plain steps of 0.1/n per example: every candidate is within 0.01 of a corner
    assert float((cands.deltas.abs() - 1.0).abs().max()) < 0.01
    again = CornerAscent(restarts=10, steps=10, step_size=0.1, seed=0)(
        toy.problem, toy.params(), toy.batch
    )
    assert torch.equal(cands.deltas, again.deltas)  # seeded


def test_shards_merge_to_the_single_run(quick_run: Path, tmp_path: Path) -> None:
    from minimax_problems.demo.shards import merge_summaries, write_merged

    rest = demo.run_demo(
        tmp_path / "a", quick=True, progress=False, parts=("counterexample", "elu", "worstclass")
    )
    digits = [
        demo.run_demo(
            tmp_path / f"d{s}",
            quick=True,
            progress=False,
            parts=("digits", "digits-bn"),
            seed=s,
            seeds=1,
        )
        for s in (0, 1)
    ]
    write_merged([rest, *digits], tmp_path / "merged")
    assert (tmp_path / "merged" / "report.html").is_file()
    merged = _summary(tmp_path / "merged")
    from minimax_problems.demo.compare import summary_differences

    assert merged["config"].pop("shards") == 3
    assert summary_differences(merged, _summary(quick_run)) == []
    with pytest.raises(ValueError, match="repeat seeds"):
        merge_summaries([rest, digits[0], digits[0]])


def test_a_signal_during_a_digits_run_stops_the_whole_demo(tmp_path, monkeypatch) -> None:
    """The trainer turns SIGINT/SIGTERM into an "interrupted" run; the demo must not go on to
    the next run with a cut-short one in its statistics."""
    from minimax_problems.demo import digits as demo_digits
    from minimax_problems.demo.common import DemoSettings
    from minimax_problems.training.history import RunHistory

    def interrupted(*args, **kwargs):
        history = RunHistory(config={}, epochs=[])
        history.status = "interrupted"
        return history

    monkeypatch.setattr(demo_digits, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt, match="interrupted while training"):
        demo_digits.run_digits(DemoSettings.quick(), [0], 0.1, tmp_path, lambda label: None)


def test_normalized_ddi_never_goes_up_on_the_counterexample() -> None:
    """The paper's claim as the demo measures it: 20 normalized DDi steps from (1, 0) never raise
    φ and reach its minimum 1. Near the minimum d is rounding noise (‖d‖ ~ 1e-16); normalizing
    it into a unit step went up 5 times before `_normalized` learned the rounding floor."""
    from minimax_problems.demo.common import DemoSettings
    from minimax_problems.demo.counterexample import run_counterexample

    ce = run_counterexample(DemoSettings.full(), 0)
    assert ce["ddi"]["went_up_steps"] == 0
    assert ce["ddi"]["final_phi"] == pytest.approx(1.0, abs=1e-12)
    assert ce["danskin"]["went_up_steps"] > 0  # the single-gradient rule does go up


def test_every_demo_file_has_the_same_permissions(quick_run: Path) -> None:
    """report.html and summary.json were written 0600 (mkstemp's) while the figures were 0644:
    all now follow the umask like a plainly created file."""
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {
        name: stat.S_IMODE((quick_run / name).stat().st_mode)
        for name in [*PNGS, "report.html", "summary.json"]
    }
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_wall_clock_and_the_estimate_say_they_depend_on_load(tmp_path: Path, capsys) -> None:
    """The demo's remaining-time estimate was off ×10 under load, and its wall-clock columns
    carried no caveat: the bar is preceded by one, and so is every wall-clock number."""
    from minimax_problems.demo import publish, run_demo, summary_tables
    from minimax_problems.demo.publish import _run_line
    from minimax_problems.demo.run import ETA_CAVEAT

    run_demo(tmp_path / "ce", quick=True, parts=("counterexample",), progress=True)
    assert ETA_CAVEAT in capsys.readouterr().err
    assert "load" in ETA_CAVEAT and "estimate" in ETA_CAVEAT
    committed = json.loads((publish.ROOT / publish.SUMMARY).read_text(encoding="utf-8"))
    digits = [t for t in summary_tables(committed) if t[0].startswith("Adversarial digits")]
    assert "wall (s)" in digits[0][1] and "depend on its load" in digits[0][0]
    assert "depend on the machine's load" in _run_line(committed)


# ---------------------------------------------------------------------------------------------
# the digits parts' rules: per-example DDi and the certified step
# ---------------------------------------------------------------------------------------------


def test_certified_step_records_certified_and_realised_decrease(quick_run: Path) -> None:
    from minimax_problems.training.history import read_jsonl

    for part, setting in (("digits", "smooth"), ("digits-bn", "relu_bn")):
        for seed in (0, 1):
            run = quick_run / "runs" / f"seed{seed}" / f"{setting}-ddi-certified"
            config = json.loads((run / "config.json").read_text(encoding="utf-8"))["config"]
            assert config["line_search"] == "armijo" and config["rule"] == "ddi"
            assert config["momentum"] == 0.0 and config["weight_decay"] == 0.0  # s = η·cert
            steps = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "step"]
            assert steps
            for r in steps:
                assert r["t"] is not None and 0.0 <= r["t"] <= 1.0
                if r["t"] > 0:  # an accepted step realised at least its certified decrease
                    assert 0.0 < r["certified_decrease"] <= r["realised_decrease"]
                    assert r["robust_loss_after"] < r["robust_loss"]
                else:
                    assert r["certified_decrease"] == 0.0
            plain = run.parent / f"{setting}-ddi" / "metrics.jsonl"
            assert all(r["t"] is None for r in read_jsonl(plain) if r.get("kind") == "step")
        summary = _summary(quick_run)[part]["settings"][setting]
        ls = summary["line_search"]["ddi-certified"]
        assert ls["below_certified"] == 0 and 0 < ls["accepted"] <= ls["steps"]
        assert ls["min_margin"] >= 0
        assert ls["certified_median"] <= ls["realised_median"]


def test_per_example_ddi_trains_in_the_smooth_setting_only(quick_run: Path) -> None:
    run = quick_run / "runs" / "seed0" / "smooth-ddi-example"
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))["config"]
    assert config["rule"] == "ddi-example" and config["line_search"] == "none"
    summary = _summary(quick_run)
    assert "ddi-example" in summary["digits"]["settings"]["smooth"]["paired"]
    assert "ddi-example" not in summary["digits-bn"]["settings"]["relu_bn"]["rules"]
    assert not (quick_run / "runs" / "seed0" / "relu_bn-ddi-example").exists()


def test_default_parts_and_the_cli_choices() -> None:
    from minimax_problems.cli import demo as cli_demo
    from minimax_problems.demo import run

    assert cli_demo.PARTS == run.PARTS  # --part's choices are the demo's parts
    assert cli_demo.DEFAULT_PARTS == run.DEFAULT_PARTS
    assert set(run.DEFAULT_PARTS) < set(run.PARTS)
    assert "elu" not in run.DEFAULT_PARTS and "digits-bn" not in run.DEFAULT_PARTS
    with pytest.raises(ValueError, match="non-empty list of part names"):
        run.run_demo("unused", parts="digits", progress=False)


def test_elu_toy_with_exact_candidates_every_rule_reaches_the_constant_prediction() -> None:
    """Why the ELU toy is out of the default demo (docs/reproducing.md): with exact candidates
    both rules lower the exact robust loss to about log 2, the constant prediction's, and end
    within 0.002 of each other: nothing to tell them apart."""
    import math

    import minimax as mm
    from minimax_problems.demo.conflict import exact_descent

    start, danskin = exact_descent(0, mm.Danskin())
    _, ddi = exact_descent(0, mm.DDi(per_example=True))
    assert start > math.log(2) + 0.02
    for end in (danskin, ddi):
        assert abs(end - math.log(2)) < 0.002
    assert abs(danskin - ddi) < 0.002


def test_train_config_line_search_is_checked() -> None:
    from minimax_problems.training import TrainConfig

    assert TrainConfig().line_search == "none"
    assert TrainConfig(line_search="armijo").to_dict()["line_search"] == "armijo"
    with pytest.raises(ValueError, match="unknown line_search 'wolfe'; choose one of none, armijo"):
        TrainConfig(line_search="wolfe")


def test_headline_sentences_follow_the_verdicts_and_name_changed_ones(quick_run: Path) -> None:
    from minimax_problems.demo.headline import changed_verdicts, headline, verdicts

    summary = _summary(quick_run)
    summary["config"]["quick"] = False  # a full run states verdicts
    entry = summary["digits"]["settings"]["smooth"]["paired"]["ddi"]["danskin"]
    entry["final_robust_acc"].update(mean=0.05, low=0.01, high=0.09, p=0.01)
    said = " ".join(headline(summary))
    assert "DDi: significantly higher (+0.050, 95% CI +0.010 to +0.090)" in said
    assert "Quick run" not in said
    other = json.loads(json.dumps(summary))
    other["config"]["threads"] = 2
    other_entry = other["digits"]["settings"]["smooth"]["paired"]["ddi"]["danskin"]
    other_entry["final_robust_acc"].update(low=-0.01, high=0.11, p=0.08)
    changed = changed_verdicts(summary, other)
    assert changed == [
        "digits, CELU, no BatchNorm, robust acc, DDi − Danskin (PGD-AT): "
        "DDi significantly higher → no significant difference"
    ]
    assert "a different verdict for 1 comparison: digits" in " ".join(headline(summary, other))
    assert len(verdicts(summary)) > 10
    assert headline(summary, summary)[-1].endswith("the same verdict for every comparison.")
