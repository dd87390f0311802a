"""``minimax demo --quick`` end to end: files, report numbers against summary.json, determinism."""

from __future__ import annotations

import contextlib
import html
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from problems import demo

PNGS = [
    "counterexample.png",
    "elu_toy.png",
    *(
        f"digits_{setting}_{name}.png"
        for setting in ("smooth", "relu_bn")
        for name in ("robust_acc_epoch", "robust_acc_wall", "went_up_fraction_epoch")
    ),
]


def _run_cli(argv: list[str]) -> int:
    from problems.cli import main

    return main(argv)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "report"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert _run_cli(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
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
    for setting in ("smooth", "relu_bn"):
        for rule in ("danskin", "maxloss", "ddi"):
            assert (quick_run / "runs" / f"{setting}-{rule}" / "metrics.jsonl").is_file()
    parsed, _ = _parse(quick_run)
    assert sorted(parsed.images) == sorted(PNGS)  # every figure is shown, none is missing
    summary = _summary(quick_run)
    assert set(summary) >= {"config", "counterexample", "elu", "digits", "timings"}
    for block in summary["digits"]["settings"].values():
        for res in block["rules"].values():
            assert len(res["epochs"]) == summary["digits"]["epochs"]
            for record in res["epochs"]:
                for key in ("clean_acc", "robust_acc", "went_up_fraction", "mean_norm", "wall"):
                    assert record[key] is not None, key


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
    for setting in ("smooth", "relu_bn"):
        rules = summary["digits"]["settings"][setting]["rules"]
        assert (
            f"DDi's final robust accuracy was {rules['ddi']['final_robust_acc']:.3f} vs "
            f"Danskin's {rules['danskin']['final_robust_acc']:.3f}"
        ) in text


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
    assert _run_cli(["demo", "--quick", "--no-progress", "--out", str(again)]) == 0
    first, second = _summary(quick_run), _summary(again)
    assert demo.strip_times(first) == demo.strip_times(second)
    assert "timings" not in demo.strip_times(first)


def test_strip_times_removes_wall_clock_fields() -> None:
    data = {"a": 1, "wall": 2.0, "b": [{"seconds": 1, "c": 3}], "timings": {"x": 1}}
    assert demo.strip_times(data) == {"a": 1, "b": [{"c": 3}]}


def test_summary_differences_ignore_wall_clock_only(quick_run: Path, tmp_path: Path) -> None:
    from problems.demo.compare import main, summary_differences

    summary = _summary(quick_run)
    changed = json.loads(json.dumps(summary))
    changed["timings"]["total"] += 1.0  # wall-clock: ignored
    assert summary_differences(summary, changed) == []
    changed["counterexample"]["ddi"]["final_phi"] += 1e-6  # a number: reported
    assert summary_differences(summary, changed) == ["$.counterexample.ddi.final_phi: "
        f"{summary['counterexample']['ddi']['final_phi']!r} != "
        f"{changed['counterexample']['ddi']['final_phi']!r}"]  # fmt: skip
    other = tmp_path / "summary.json"
    other.write_text(json.dumps(changed), encoding="utf-8")
    assert main([str(quick_run / "summary.json"), str(quick_run / "summary.json")]) == 0
    assert main([str(quick_run / "summary.json"), str(other)]) == 1
