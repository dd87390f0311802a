"""The worst-group comparison on real data: ERM, Danskin, online Group DRO, DDi (certified step,
shrinking tolerance) and group-balanced gradient-boosted trees, over several seeds, at equal
passes and reported at equal CPU time.

For each data set (Adult: 6 groups sex × race; MNIST-1D: the 10 classes) and each setting (a
model and a batch mode, `SETTINGS`):

1. **Tuning, on the validation part of the first seed only.** Group DRO's η and DDi's τ₀ each
   get the same number of trials (`CompareSettings.dro_grid`, ``tau_grid``), each trial a full
   run of the setting's length; the trees get as many grid points. The pick is the highest
   worst-group validation accuracy, ties broken by the lower worst-group validation loss, then
   by grid order (`pick`). The test part is never read while tuning.
2. **The runs.** Every seed draws its own validation split and initialization; every rule of a
   seed shares them (and the minibatches), so the comparison is paired. Each rule trains for the
   setting's passes (epochs).
3. **Metrics.** Per rule and seed (`METRICS`): worst-group test accuracy and loss, average test
   accuracy, worst-group training loss at the end (equal passes) and at equal CPU time (the CPU
   time of the seed's fastest rule, read off the curve), worst-group test accuracy at equal CPU
   time, ‖d‖ at the end, the fraction of steps after which the batch's worst-group loss rose, CPU
   and wall seconds. Per rule the mean with its 95% t-interval; DDi − every other rule (and −
   the trees) paired over seeds (`problems.stats`).

Public API::

    Setting, SETTINGS, CompareSettings(...), CompareSettings.tiny(dataset)
    METRICS                                   metric → higher is better
    pick(trials) -> int                       the tuning choice, by validation metrics only
    tune(data, spec, rule, grid, seed) -> {"trials", "chosen"}
    compare(settings, progress=None) -> dict  the JSON written by ``python -m
                                              problems.worstgroup.compare``
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..data.groups import WorstGroupData
from ..data.worstgroup import load_worstgroup
from ..stats import mean_interval, paired_difference
from .train import RULES, RunSpec, group_metrics, train_rule
from .trees import fit_group_balanced_trees

__all__ = [
    "DATASETS",
    "METRICS",
    "SETTINGS",
    "CompareSettings",
    "Setting",
    "compare",
    "pick",
    "tune",
]

DATASETS: tuple[str, ...] = ("adult", "mnist1d")
#: metric → True when higher is better
METRICS: dict[str, bool] = {
    "worst_group_test_acc": True,
    "worst_group_test_loss": False,
    "test_acc": True,
    "worst_group_train_loss": False,
    "worst_group_train_loss_at_cpu": False,
    "worst_group_test_acc_at_cpu": True,
    "final_norm": False,
    "went_up_fraction": False,
    "cpu_seconds": False,
    "seconds": False,
}
TREE_METRICS: dict[str, bool] = {"worst_group_test_acc": True, "test_acc": True}
#: the parameter each tuned rule takes
TUNED = {"group_dro": "dro_grid", "ddi": "tau_grid"}


@dataclass(frozen=True)
class Setting:
    """A model and a batch mode on one data set: ``name`` (e.g. ``"mlp-minibatch"``) and the
    run's sizes."""

    name: str
    spec: RunSpec


def _settings(*rows: tuple[str, int | None, int, float, dict[str, Any]]) -> tuple[Setting, ...]:
    out = []
    for model, batch, passes, lr, options in rows:
        spec = RunSpec(model, passes, batch, lr, points=11, model_options=tuple(options.items()))
        out.append(Setting(f"{model}-{spec.mode}", spec))
    return tuple(out)


#: data set → its settings: (model, batch size or None, passes, SGD lr, model options)
SETTINGS: dict[str, tuple[Setting, ...]] = {
    "adult": _settings(
        ("logistic", None, 30, 1.0, {}),
        ("logistic", 512, 2, 0.2, {}),
        ("mlp", None, 30, 1.0, {}),
        ("mlp", 512, 2, 0.2, {}),
    ),
    "mnist1d": _settings(
        ("mlp", None, 200, 0.5, {}),
        ("mlp", 128, 8, 0.2, {}),
        ("cnn1d", None, 20, 0.3, {"channels": 16}),
        ("cnn1d", 128, 3, 0.1, {"channels": 16}),
    ),
}
#: boosting iterations of the trees per data set (10 classes need 10 trees per iteration)
TREE_ITERATIONS = {"adult": 50, "mnist1d": 30}


@dataclass(frozen=True)
class CompareSettings:
    """One data set's comparison: its settings, the seeds, the tuning grids (Group DRO's η,
    DDi's τ₀ in nats, the trees' hyperparameters: as many points each), the trees' number of
    boosting iterations, and optional subsets (``sizes``: train, val, test examples) for quick
    runs."""

    dataset: str
    settings: tuple[Setting, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    dro_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    tau_grid: tuple[float, ...] = (0.01, 0.05, 0.2)
    tree_grid: tuple[dict[str, Any], ...] = (
        {"learning_rate": 0.1, "max_leaf_nodes": 15},
        {"learning_rate": 0.1, "max_leaf_nodes": 31},
        {"learning_rate": 0.3, "max_leaf_nodes": 15},
    )
    tree_iter: int = 100
    sizes: tuple[int | None, int | None, int | None] = (None, None, None)
    cache_dir: str | None = None
    rules: tuple[str, ...] = field(default=RULES)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if not self.seeds:
            raise ValueError("seeds is empty: pass at least one seed")
        if "ddi" not in self.rules or set(self.rules) - set(RULES):
            raise ValueError(f"rules must include ddi and be among {RULES}, got {self.rules}")
        grids = (len(self.dro_grid), len(self.tau_grid), len(self.tree_grid))
        if len(set(grids)) != 1 or grids[0] < 1:
            raise ValueError(
                f"the tuning grids need the same number (≥ 1) of points, got η {grids[0]}, "
                f"τ₀ {grids[1]}, trees {grids[2]}: give every tuned method the same trials"
            )

    @classmethod
    def full(cls, dataset: str, **changes: Any) -> CompareSettings:
        """The committed comparison's sizes for ``dataset``."""
        if dataset not in SETTINGS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
        base = cls(dataset, SETTINGS[dataset], tree_iter=TREE_ITERATIONS[dataset])
        return replace(base, **changes)

    @classmethod
    def tiny(cls, dataset: str, **changes: Any) -> CompareSettings:
        """Seconds: 2 seeds, 2 grid points, few steps on subsets (tests and smoke runs)."""
        small = tuple(
            replace(s, spec=replace(s.spec, passes=2, points=3, lr=min(s.spec.lr, 0.5)))
            for s in SETTINGS[dataset]
        )
        small_sizes: dict[str, Any] = {
            "seeds": (0, 1),
            "dro_grid": (0.01, 1.0),
            "tau_grid": (0.01, 0.2),
            "tree_grid": ({"max_leaf_nodes": 7}, {"max_leaf_nodes": 15}),
            "tree_iter": 5,
            "sizes": (400, 200, 300),
        }
        return replace(cls(dataset, small), **{**small_sizes, **changes})


def pick(trials: Sequence[Mapping[str, Any]]) -> int:
    """Index of the best trial: highest ``worst_group_val_acc``, then lowest
    ``worst_group_val_loss``, then the first. Only those validation keys are read."""
    if not trials:
        raise ValueError("no trials to pick from")
    keys = [(-t["worst_group_val_acc"], t["worst_group_val_loss"], i) for i, t in enumerate(trials)]
    return min(keys)[2]


def tune(
    data: WorstGroupData, spec: RunSpec, rule: str, grid: Sequence[float], seed: int
) -> dict[str, Any]:
    """Train ``rule`` once per parameter of ``grid`` (validation only) and `pick` one."""
    trials = []
    for param in grid:
        model, record = train_rule(data, spec, rule, param, seed, evaluate_on="val")
        val = group_metrics(model, data.val, data.num_groups)
        trials.append(
            {
                "param": param,
                "worst_group_val_acc": val["worst_group_acc"],
                "worst_group_val_loss": val["worst_group_loss"],
                "cpu_seconds": record["cpu_seconds"],
            }
        )
    return {"trials": trials, "chosen": trials[pick(trials)]["param"]}


def _at_cpu(curve: Sequence[Sequence[float]], budget: float) -> tuple[float, float]:
    """(worst-group training loss, worst-group test accuracy) at the last point of ``curve``
    whose CPU time is within ``budget``."""
    within = [row for row in curve if row[1] <= budget + 1e-9]
    row = within[-1] if within else curve[0]
    return row[2], row[3]


def _run_seed(
    data: WorstGroupData,
    cs: CompareSettings,
    setting: Setting,
    params: Mapping[str, float],
    seed: int,
) -> dict[str, Any]:
    """Every rule on one seed, with its test metrics and the equal-CPU-time readings."""
    rules: dict[str, Any] = {}
    for name in cs.rules:
        model, record = train_rule(data, setting.spec, name, params.get(name), seed)
        test = group_metrics(model, data.test, data.num_groups)
        train = group_metrics(model, data.train, data.num_groups)
        rules[name] = {
            "worst_group_test_acc": test["worst_group_acc"],
            "worst_group_test_loss": test["worst_group_loss"],
            "test_acc": test["acc"],
            "worst_group_train_loss": train["worst_group_loss"],
            **record,
        }
    budget = min(r["cpu_seconds"] for r in rules.values())
    for record in rules.values():
        loss, acc = _at_cpu(record["curve"], budget)
        record["worst_group_train_loss_at_cpu"], record["worst_group_test_acc_at_cpu"] = loss, acc
    return {"seed": seed, "cpu_budget": budget, "rules": rules}


def _summary(runs: Sequence[Mapping[str, Any]], trees: Sequence[Mapping[str, Any]]) -> dict:
    """Per rule and metric a 95% interval; DDi − each other rule (and − the trees) paired."""
    names = list(runs[0]["rules"])
    per_rule = {
        n: {m: mean_interval([r["rules"][n][m] for r in runs]) for m in METRICS} for n in names
    }
    ddi = {m: [r["rules"]["ddi"][m] for r in runs] for m in METRICS}
    paired = {
        n: {
            m: paired_difference(ddi[m], [r["rules"][n][m] for r in runs], better)
            for m, better in METRICS.items()
        }
        for n in names
        if n != "ddi"
    }
    paired["trees"] = {
        m: paired_difference(ddi[m], [t[m] for t in trees], better)
        for m, better in TREE_METRICS.items()
    }
    active = [r["rules"]["ddi"]["active_groups"] for r in runs]
    return {"rules": per_rule, "paired": paired, "ddi_active_groups": mean_interval(active)}


def _load(cs: CompareSettings, seed: int) -> WorstGroupData:
    return load_worstgroup(cs.dataset, seed=seed, cache_dir=cs.cache_dir).head(*cs.sizes)


def _trees(cs: CompareSettings, data: Sequence[WorstGroupData]) -> dict[str, Any]:
    """The trees tuned on the first seed's validation part, then refitted on every seed."""
    first = fit_group_balanced_trees(
        data[0], seed=cs.seeds[0], grid=cs.tree_grid, max_iter=cs.tree_iter
    )
    runs = []
    for d, seed in zip(data, cs.seeds):
        c0 = time.process_time()
        fit = fit_group_balanced_trees(d, seed=seed, grid=(first.params,), max_iter=cs.tree_iter)
        runs.append(
            {
                "seed": seed,
                "worst_group_test_acc": fit.worst_group_test_acc,
                "test_acc": fit.test_acc,
                "cpu_seconds": round(time.process_time() - c0, 3),
            }
        )
    summary = {m: mean_interval([r[m] for r in runs]) for m in TREE_METRICS}
    return {
        "tuning": {"chosen": first.params, "trials": first.grid},
        "runs": runs,
        "rules": summary,
    }


def compare(cs: CompareSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The whole comparison on one data set (see the module doc); JSON-able. ``progress(text)``
    is called as each stage ends."""
    say = progress or (lambda _: None)
    c0, t0 = time.process_time(), time.perf_counter()
    data = [_load(cs, seed) for seed in cs.seeds]
    trees = _trees(cs, data)
    say(f"{cs.dataset}: trees")
    out: dict[str, Any] = {}
    for setting in cs.settings:
        tuning = {
            rule: tune(data[0], setting.spec, rule, getattr(cs, grid), cs.seeds[0])
            for rule, grid in TUNED.items()
            if rule in cs.rules
        }
        params = {rule: t["chosen"] for rule, t in tuning.items()}
        runs = [_run_seed(d, cs, setting, params, seed) for d, seed in zip(data, cs.seeds)]
        out[setting.name] = {
            "model": setting.spec.model,
            "mode": setting.spec.mode,
            "spec": asdict(setting.spec),
            "tuning": tuning,
            "runs": runs,
            **_summary(runs, trees["runs"]),
        }
        say(f"{cs.dataset}: {setting.name}")
    first = data[0]
    config = asdict(cs)
    config["settings"] = [s.name for s in cs.settings]
    config["examples"] = {p: len(first.part(p)[1]) for p in ("train", "val", "test")}
    config["groups"] = list(first.group_names)
    return {
        "config": config,
        "trees": trees,
        "settings": out,
        "timings": {
            "cpu_seconds": round(time.process_time() - c0, 2),
            "seconds": round(time.perf_counter() - t0, 2),
        },
    }
