"""Plots, HTML and run comparison (minimax_problems.report) on the reference run."""

from __future__ import annotations

from minimax_problems.comparison import compare_runs
from minimax_problems.report import plot_curves, write_html


def test_plots_and_html(reference, tmp_path) -> None:
    _, history = reference
    png = plot_curves(
        {"ddi": history, "list": [{"epoch": 1, "robust_acc": 0.1}]},
        x="wall",
        y="robust_acc",
        path=tmp_path / "a.png",
        title="t",
    )
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    page = write_html(
        tmp_path / "r.html",
        "a <b> & c",
        [("fig", "a.png", "x < y")],
        [("tab", ["k", "v"], [["<i>", 0.5]])],
    )
    text = page.read_text()
    assert "a &lt;b&gt; &amp; c" in text and "x &lt; y" in text and "&lt;i&gt;" in text
    assert 'src="a.png"' in text
    report = compare_runs([history.out_dir, history.out_dir], tmp_path / "cmp")
    assert report.is_file() and (tmp_path / "cmp" / "robust_acc_wall.png").is_file()
