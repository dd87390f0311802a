"""The layout of `problems`: no import cycle, and the registries that the CLI reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import minimax
from minimax.extend import ATTACKS
from minimax_problems.cli import build_parser
from minimax_problems.data.datasets import DATASETS, ImageData, load_dataset
from minimax_problems.demo.digits import VARIANTS as DEMO_VARIANTS
from minimax_problems.evaluation import make_attack, parse_attacks
from minimax_problems.models import MODELS, build_model
from minimax_problems.threats import THREATS, make_perturbation
from minimax_problems.training import RULES, build_rule
from minimax_problems.training.rules import training_rules

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The `problems` modules that ``path`` imports (anywhere in the file, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            # `from .data import digits` (inside the package) imports the submodule
            # minimax_problems.data.digits; relative imports resolve against the module's package
            base = _module_name(path).split(".")
            if path.name != "__init__.py":
                base = base[:-1]
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = (node.module or "").replace("minimax_problems", "problems", 1)
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        found |= {n for n in names if n in modules}
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*stack, nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_problems_has_no_import_cycle() -> None:
    paths = sorted((ROOT / "problems").rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph = {_module_name(p): _imports(p, modules) - {_module_name(p)} for p in paths}
    # a package's __init__ may re-export its submodules; a submodule importing its own package
    # is the only edge that would close a loop, and _imports reports it
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])
    # the walk sees the package's (relative) imports: the CLI reaches the training loop
    assert sum(map(len, graph.values())) > 50
    package = _module_name(ROOT / "problems" / "training" / "__init__.py")
    assert _module_name(ROOT / "problems" / "training" / "loop.py") in graph[package]
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]  # the checker finds one


def test_cli_choices_come_from_the_registries() -> None:
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    choices = {a.dest: a.choices for a in train._actions if a.choices is not None}
    assert list(choices["dataset"]) == DATASETS.names()
    assert list(choices["model"]) == MODELS.names()
    assert list(choices["rule"]) == training_rules(aliases=True)
    assert "pgd" in choices["rule"] and "pgd" not in training_rules()  # aliases: CLI only
    assert list(choices["threat"]) == THREATS.names()


def test_every_registered_rule_model_attack_and_threat_builds() -> None:
    for name in RULES.names():
        rule, again = build_rule(name), build_rule(name)
        assert isinstance(rule, minimax.extend.Rule) and rule is not again, name  # fresh state
        assert repr(rule) == repr(again), name
    for name in MODELS.names():
        model = build_model(name, normalization="group", num_classes=3, image_size=16)
        assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3)
    assert THREATS is minimax.extend.THREATS  # one builder: minimax.extend.threat_set
    for name in THREATS.names():
        ball = make_perturbation(name, 0.1)
        assert isinstance(ball, THREATS.get(name)) and repr(ball).endswith("lower=0, upper=1)")
    with pytest.raises(ValueError, match="wider than the input range"):
        make_perturbation("linf", 2.0)
    for name in ["clean", *ATTACKS.names()]:
        assert parse_attacks(name) == [name]
        solver = make_attack(name, 0.1)
        assert (solver is None) == (name == "clean")
    assert make_attack("pgd2", 0.1).steps == 2  # type: ignore[union-attr]
    # the demo compares registered rules
    assert {rule for rule, _ in DEMO_VARIANTS.values()} <= set(RULES.names())
    with pytest.raises(ValueError, match="unknown attack"):
        parse_attacks("fgsm3")  # fgsm takes no step count


def test_digits_dataset_from_the_registry(tmp_path: Path) -> None:
    data = load_dataset("digits", tmp_path, seed=0)
    assert isinstance(data, ImageData)
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 8, 10)
    assert data.train[0].shape[0] + data.test[0].shape[0] == 1797
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)
