"""Figures: a distinct style per run (identical curves stay visible), titles that fit, integer
epoch ticks; `minimax compare` with went-up fractions and evaluation results; the one-line
message when the [demo] extra is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from minimax_problems.cli import main
from minimax_problems.comparison import evaluation_table
from minimax_problems.figures import run_style
from minimax_problems.report import curves_figure

RECORDS = [{"epoch": e, "robust_acc": 0.1 * e, "wall": 1.5 * e} for e in (1, 2, 3)]
TRAIN = [
    "train",
    "--dataset",
    "synthetic",
    "--model",
    "small_cnn",
    "--epochs",
    "2",
    "--steps",
    "1",
    "--eval-steps",
    "1",
    "--limit-train",
    "32",
    "--limit-test",
    "8",
    "--batch-size",
    "16",
    "--no-progress",
]


def test_identical_runs_get_distinct_styles() -> None:
    fig = curves_figure({"a": RECORDS, "b": list(RECORDS)}, x="epoch", y="robust_acc")
    try:
        a, b = fig.axes[0].get_lines()
        assert list(a.get_xdata()) == list(b.get_xdata())
        assert list(a.get_ydata()) == list(b.get_ydata())  # the same curve twice...
        for getter in ("get_color", "get_linestyle", "get_marker"):  # ...drawn two ways
            assert getattr(a, getter)() != getattr(b, getter)()
    finally:
        plt.close(fig)
    styles = [tuple(run_style(i).values()) for i in range(8)]
    assert all(styles[i][k] != styles[i + 1][k] for i in range(7) for k in range(5))
    assert len(set(styles)) == len(styles)


def test_integer_epoch_ticks_and_a_long_title_fits() -> None:
    title = "Robust accuracy against epochs for a run whose name is long enough to be clipped"
    fig = curves_figure({"a": RECORDS}, x="epoch", y="robust_acc", title=title)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
        assert "\n" in ax.get_title()  # wrapped
        box, frame = ax.title.get_window_extent(), fig.bbox
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and box.y1 <= frame.y1
    finally:
        plt.close(fig)
    wall = curves_figure({"a": RECORDS}, x="wall", y="robust_acc")
    try:
        wall.canvas.draw()
        assert not all(float(t).is_integer() for t in wall.axes[0].get_xticks())
    finally:
        plt.close(wall)


@pytest.fixture(scope="module")
def remeasured(tmp_path_factory) -> Path:
    """A run trained with --remeasure, with an eval-best.json from `minimax evaluate`."""
    root = tmp_path_factory.mktemp("cmp")
    out = root / "run"
    assert main([*TRAIN, "--remeasure", "--data-dir", str(root / "data"), "--out", str(out)]) == 0
    assert (
        main(
            ["evaluate", str(out), "--attacks", "clean,first-two", "--limit", "8", "--no-progress"]
        )
        == 0
    )
    assert (out / "eval-best.json").is_file()
    return out


def test_compare_went_up_and_evaluations(remeasured, tmp_path, capsys) -> None:
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(remeasured), str(remeasured), "--names", "a,b", "--out", str(out)])
        == 0
    )
    names = {p.name for p in out.iterdir()}
    assert {"went_up_epoch.png", "evaluation.png", "robust_acc_epoch.png"} <= names
    page = (out / "report.html").read_text()
    assert "Fraction of steps whose robust loss went up" in page
    assert "<td>a (best)</td>" in page and "<td>b (best)</td>" in page
    assert "Linf" in page and "apgd-ce, apgd-t" in page


def test_compare_without_remeasure_has_no_went_up_plot(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert (
        main([*TRAIN, "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out", str(out)])
        == 0
    )
    assert main(["compare", str(out), "--out", str(tmp_path / "cmp")]) == 0
    names = {p.name for p in (tmp_path / "cmp").iterdir()}
    assert "went_up_epoch.png" not in names and "evaluation.png" not in names


@pytest.mark.parametrize(
    ("blocked", "argv", "package"),
    [
        (("matplotlib",), ["compare", "RUN", "--out", "OUT"], "matplotlib"),
        (("matplotlib",), ["demo", "--quick", "--out", "OUT"], "matplotlib"),
        (("sklearn", "sklearn.datasets"), ["demo", "--quick", "--out", "OUT"], "scikit-learn"),
        (
            ("sklearn", "sklearn.datasets"),
            ["evaluate", "RUN", "--dataset", "digits", "--attacks", "clean"],
            "scikit-learn",
        ),
    ],
)
def test_missing_demo_extra_is_one_clear_line(
    blocked, argv, package, remeasured, tmp_path, monkeypatch, capsys
) -> None:
    for module in blocked:
        monkeypatch.setitem(sys.modules, module, None)  # import → ImportError
    capsys.readouterr()
    argv = [
        str(remeasured) if a == "RUN" else str(tmp_path / "o") if a == "OUT" else a for a in argv
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"needs {package}" in err and "pip install 'minimax[demo]'" in err
    assert not (tmp_path / "o").exists()


def test_cli_imports_without_the_demo_extra() -> None:
    """`minimax train --help` in a fresh interpreter where matplotlib and sklearn cannot load."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('matplotlib', 'sklearn'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from minimax_problems.cli import main\n"
        "code = main(['train', '--help']) + main(['evaluate', '--help'])\n"
        "sys.exit(code + main(['compare', '.', '--out', '/nonexistent/x']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().endswith("pip install 'minimax[demo]'")
    assert "usage: minimax train" in done.stdout


def test_evaluation_table_reads_old_and_new_files() -> None:
    new = {
        "clean_acc": 0.9,
        "robust_acc": {"apgd-ce": 0.5},
        "worst_case_acc": 0.4,
        "autoattack_first_two": 0.45,
        "threat_model": "L2",
        "eps": 0.5,
        "dataset": "cifar10",
        "attacks": ["clean", "apgd-ce", "apgd-t"],
        "n_examples": 10,
        "robustbench": {"eps": "0.5"},
    }
    old = {
        "clean_acc": 0.9,
        "robust_acc": {"apgd-dlr": 0.5},
        "worst_case_acc": 0.4,
        "autoattack_first_two": 0.45,
        "norm": "linf",
        "eps": 0.03,
        "attacks": ["apgd-dlr"],
    }
    header, rows = evaluation_table({"new": new, "old": old})
    cell = dict(zip(header, rows[0]))
    assert (cell["threat"], cell["eps"], cell["dataset"]) == ("L2", "0.5", "cifar10")
    assert cell["first two (APGD-CE, APGD-T)"] == "0.45"
    assert dict(zip(header, rows[1]))["first two (APGD-CE, APGD-T)"] == "–"  # APGD-DLR-based


def test_seed_bands_draw_a_styled_mean_and_the_range_over_seeds() -> None:
    from minimax_problems.figures import seed_bands

    fig, ax = plt.subplots()
    try:
        same = ([1, 2, 3], [[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])
        seed_bands(ax, {"a": same, "b": same, "c": ([1, 2, 3], [[0.5, None, 0.7]])})
        a, b, c = ax.get_lines()
        assert list(a.get_ydata()) == pytest.approx([0.2, 0.3, 0.4])  # the mean over seeds
        assert list(a.get_ydata()) == list(b.get_ydata())  # identical curves ...
        for getter in ("get_color", "get_linestyle", "get_marker"):  # ... drawn two ways
            assert getattr(a, getter)() != getattr(b, getter)()
        assert list(c.get_xdata()) == [1, 3]  # a point not measured is left out
        assert len(ax.collections) == 2  # one shaded range per series with several seeds
        low, high = ax.collections[0].get_paths()[0].get_extents().intervaly
        assert (low, high) == pytest.approx((0.1, 0.5))
        with pytest.raises(ValueError, match="one y per x"):
            seed_bands(ax, {"d": ([1, 2], [[0.1]])})
        with pytest.raises(ValueError, match="no seeds"):
            seed_bands(ax, {"e": ([1], [])})
    finally:
        plt.close(fig)
