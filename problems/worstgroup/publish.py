"""Write the worst-group comparison's hypotheses, setup, findings and tables into the docs from
the committed JSON (`docs/results/worstgroup-*.json`), so that no number there is typed by hand::

    python -m minimax_problems.worstgroup.publish           # rewrite the blocks
    python -m minimax_problems.worstgroup.publish --check   # exit 1 if a block differs
    python -m minimax_problems.worstgroup.publish --figures # also redraw the figures from the JSON

Each block sits between ``<!-- worstgroup:NAME -->`` and ``<!-- /worstgroup:NAME -->``; the rest
of the page is left alone. The test suite runs the check.

Public API::

    RESULTS, OTHER_THREADS, TARGETS     the committed JSON files and {page: block names}
    load(paths, root) -> {dataset: result}     the results that exist
    blocks(results, other=None) -> {name: markdown}
    render(text, blocks, names=None) -> str
    main(argv) -> int
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..pages import publish_pages, render_blocks
from .figures import RULE_LABELS
from .hypotheses import DELTA, HYPOTHESES, TESTS, changed_verdicts, decide_all

__all__ = ["OTHER_THREADS", "RESULTS", "ROOT", "TARGETS", "blocks", "load", "main", "render"]

ROOT = Path(__file__).resolve().parents[2]
RESULTS = {
    "adult": Path("docs/results/worstgroup-adult.json"),
    "mnist1d": Path("docs/results/worstgroup-mnist1d.json"),
}
#: the same command with 2 torch threads
OTHER_THREADS = {
    "adult": Path("docs/results/worstgroup-adult-threads2.json"),
    "mnist1d": Path("docs/results/worstgroup-mnist1d-threads2.json"),
}
TARGETS: dict[str, tuple[str, ...]] = {
    "README.md": ("summary",),
    "docs/reproducing.md": ("hypotheses", "setup", "findings", "tables", "diagnostics", "threads"),
}
ANCHOR = "docs/reproducing.md#worst-group-comparison-on-real-data"
NOT_RUN = "(not run yet: `python -m minimax_problems.worstgroup` writes the results)"
LABELS = {"adult": "Adult", "mnist1d": "MNIST-1D"}


def load(paths: Mapping[str, Path], root: Path = ROOT) -> dict[str, Any]:
    """Data set → its result, for the files of ``paths`` that exist under ``root``."""
    return {
        name: json.loads((root / p).read_text(encoding="utf-8"))
        for name, p in paths.items()
        if (root / p).is_file()
    }


def _mean(entry: Mapping[str, Any], fmt: str = ".3f") -> str:
    if entry.get("low") is None:
        return format(entry["mean"], fmt)
    return f"{entry['mean']:{fmt}} ± {entry['high'] - entry['mean']:{fmt}}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _hypotheses_block() -> str:
    return "\n".join(
        f"- **{name}** {statement}. *Test, in each setting:* {TESTS[name]}."
        for name, statement in HYPOTHESES.items()
    )


def _setup_block(results: Mapping[str, Any]) -> str:
    if not results:
        return NOT_RUN
    rows, notes = [], []
    for dataset, r in results.items():
        cfg = r["config"]
        for name, block in r["settings"].items():
            spec, tuning = block["spec"], block["tuning"]
            steps = block["runs"][0]["rules"]["ddi"]["steps"]
            rows.append(
                [
                    LABELS[dataset],
                    name,
                    "full" if spec["batch_size"] is None else str(spec["batch_size"]),
                    str(spec["passes"]),
                    str(steps),
                    f"{spec['lr']:g}",
                    f"{tuning['group_dro']['chosen']:g}",
                    f"{tuning['ddi']['chosen']:g}",
                ]
            )
        ex = cfg["examples"]
        notes.append(
            f"{LABELS[dataset]}: {ex['train']:,} train / {ex['val']:,} validation / "
            f"{ex['test']:,} test examples, {len(cfg['groups'])} groups; seeds "
            f"{', '.join(map(str, cfg['seeds']))}; η grid {list(cfg['dro_grid'])}, τ₀ grid "
            f"{list(cfg['tau_grid'])}; trees: {cfg['tree_iter']} boosting iterations, grid "
            f"{cfg['tree_grid']}, chosen {r['trees']['tuning']['chosen']}; "
            f"{cfg['threads']} torch thread(s), {r['timings']['cpu_seconds'] / 60:.1f} CPU "
            f"minutes ({r['timings']['seconds'] / 60:.1f} wall-clock minutes on a shared "
            f"machine), command `{cfg['command']}`."
        )
    header = ["data", "setting", "batch", "passes", "steps", "SGD lr", "η (tuned)", "τ₀ (tuned)"]
    return _table(header, rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def _findings_block(results: Mapping[str, Any]) -> str:
    if not results:
        return NOT_RUN
    lines = []
    for h in decide_all(results):
        held = sum(c["held"] for c in h["cells"])
        verdict = "held" if h["held"] else "did not hold"
        lines.append(
            f"- **{h['name']} {verdict}** ({h['statement']}): held in {held} of "
            f"{len(h['cells'])} settings."
        )
        lines += [
            f"    - {LABELS[c['dataset']]} {c['setting']}: {'held' if c['held'] else 'not'}; "
            f"{c['detail']}"
            for c in h["cells"]
        ]
    return "\n".join(lines)


def _tables_block(results: Mapping[str, Any]) -> str:
    if not results:
        return NOT_RUN
    metrics = {
        "worst_group_test_acc": "worst-group test acc",
        "test_acc": "average test acc",
        "worst_group_train_loss": "worst-group train loss",
        "worst_group_train_loss_at_cpu": "… at equal CPU time",
        "worst_group_test_acc_at_cpu": "worst-group test acc at equal CPU time",
    }
    parts = []
    for dataset, r in results.items():
        for name, block in r["settings"].items():
            rows = [
                [RULE_LABELS[rule], *(_mean(stats[m]) for m in metrics)]
                for rule, stats in block["rules"].items()
            ]
            parts.append(
                f"**{LABELS[dataset]}, {name}**\n\n" + _table(["rule", *metrics.values()], rows)
            )
        trees = r["trees"]["rules"]
        parts.append(
            f"Trees on {LABELS[dataset]} (no setting): worst-group test accuracy "
            f"{_mean(trees['worst_group_test_acc'])}, average test accuracy "
            f"{_mean(trees['test_acc'])}."
        )
    return "\n\n".join(parts)


def _diagnostics_block(results: Mapping[str, Any]) -> str:
    if not results:
        return NOT_RUN
    rows = []
    for dataset, r in results.items():
        for name, block in r["settings"].items():
            rules = block["rules"]
            rows.append(
                [
                    f"{LABELS[dataset]} {name}",
                    _mean(block["ddi_active_groups"], ".2f"),
                    *(_mean(rules[rule]["final_norm"], ".3f") for rule in ("danskin", "ddi")),
                    *(_mean(rules[rule]["went_up_fraction"], ".2f") for rule in rules),
                    *(_mean(rules[rule]["cpu_seconds"], ".1f") for rule in ("danskin", "ddi")),
                ]
            )
    rules = list(next(iter(next(iter(results.values()))["settings"].values()))["rules"])
    header = [
        "setting",
        "DDi groups per step",
        "‖d‖ Danskin",
        "‖d‖ DDi",
        *(f"went up, {RULE_LABELS[rule].split(' (')[0]}" for rule in rules),
        "CPU s Danskin",
        "CPU s DDi",
    ]
    return _table(header, rows)


def _threads_block(results: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    if not results or not other:
        return "(no run with 2 torch threads committed: not measured)"
    changed, compared = changed_verdicts(results, other)
    both = [d for d in results if d in other]
    missing = [LABELS[d] for d in results if d not in other]
    head = (
        f"With 2 torch threads instead of 1 (`--threads 2`, the same seeds) on "
        f"{' and '.join(LABELS[d] for d in both)}"
    )
    tail = f" ({', '.join(missing)}: no 2-thread run committed.)" if missing else ""
    if not changed:
        return (
            f"{head}, none of the {compared} verdicts changed (each hypothesis in each setting, "
            f"and every paired test but the clocks').{tail}"
        )
    at_cpu = sum("_at_cpu," in c for c in changed)
    hypotheses = sum(c.startswith("H") for c in changed)
    return (
        f"{head}, {len(changed)} of the {compared} verdicts changed (each hypothesis in each "
        f"setting, and every paired test but the clocks'); {at_cpu} of them are readings at "
        f"equal CPU time and {hypotheses} are hypotheses' verdicts: "
        + "; ".join(changed)
        + "."
        + tail
    )


def _summary_block(results: Mapping[str, Any]) -> str:
    if not results:
        return NOT_RUN
    decided = {h["name"]: h for h in decide_all(results)}

    def count(name: str) -> str:
        h = decided[name]
        return f"{sum(c['held'] for c in h['cells'])} of {len(h['cells'])}"

    data = " and ".join(LABELS[d] for d in results)
    seeds = len(next(iter(results.values()))["config"]["seeds"])
    wins = sum(c["held"] for c in decided["H1"]["cells"])
    settings = len(decided["H1"]["cells"])
    lower = (
        f"did not reach a significantly lower worst-group training loss than both Danskin and "
        f"Group DRO in any of the {settings} settings at equal passes"
        if wins == 0
        else f"reached a significantly lower worst-group training loss than both Danskin and "
        f"Group DRO in {wins} of {settings} settings at equal passes"
    )
    trees = f", the trees were ahead of it on Adult in {count('H3')}" if "H3" in decided else ""
    return (
        f"On {data} ({seeds} seeds; full batch and minibatches; step parameters tuned on "
        f"validation), DDi with certified steps {lower} ({count('H5')} at equal CPU time), its "
        f"worst-group test accuracy was no worse than Group DRO's by more than {DELTA:g} in "
        f"{count('H2')}{trees}, and its certified step never let the objective go up in "
        f"{count('H4')} ([details and analysis]({ANCHOR}))."
    )


def blocks(results: Mapping[str, Any], other: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every generated block from ``results`` (and the 2-thread run ``other``)."""
    return {
        "hypotheses": _hypotheses_block(),
        "setup": _setup_block(results),
        "findings": _findings_block(results),
        "tables": _tables_block(results),
        "diagnostics": _diagnostics_block(results),
        "threads": _threads_block(results, other or {}),
        "summary": _summary_block(results),
    }


def render(text: str, generated: Mapping[str, str], names: Sequence[str] | None = None) -> str:
    """``text`` with the blocks ``names`` (default: all) replaced (`render_blocks`)."""
    return render_blocks(text, "worstgroup", generated, names)


def _figures(results: Mapping[str, Any], folder: Path) -> None:
    from .figures import plot_accuracy, plot_curves  # matplotlib

    for dataset, result in results.items():
        plot_curves(result, folder / f"worstgroup-{dataset}-curves.png")
        plot_accuracy(result, folder / f"worstgroup-{dataset}-accuracy.png")


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (``--check``: compare) the blocks of `TARGETS`; 1 when a check finds one stale."""
    parser = argparse.ArgumentParser(prog="python -m minimax_problems.worstgroup.publish")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on change")
    parser.add_argument(
        "--figures", action="store_true", help="also redraw docs/img/worstgroup-*.png from them"
    )
    args = parser.parse_args(argv)
    if args.figures:
        _figures(load(RESULTS, args.root), args.root / "docs/img")
    generated = blocks(load(RESULTS, args.root), load(OTHER_THREADS, args.root))
    stale = publish_pages(args.root, TARGETS, "worstgroup", generated, args.check)
    verb = "differ from the results" if args.check else "rewritten"
    print(f"{', '.join(stale)} {verb}" if stale else "up to date")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
