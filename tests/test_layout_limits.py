"""Size limits of the code (tests excluded): modules ≤ 400 lines, functions ≤ 60 lines.

A function may be longer when the line right above its ``def`` (or its first decorator) is a
comment starting with ``# long:`` that says why (an argparse table, a docstring-heavy factory).
Lines are counted as an ``ast`` walk sees them: a module's newlines, a function's
``end_lineno - lineno + 1`` (its decorators not included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minimax", "problems", "benchmarks", "examples")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized(source: str, name: str) -> list[str]:
    """Every limit ``source`` (the text of module ``name``) breaks, one line each."""
    found = []
    lines = source.count("\n")
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: module of {lines} lines (limit {MAX_MODULE_LINES}): split it")
    text = source.splitlines()
    for node in ast.walk(ast.parse(source, filename=name)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length <= MAX_FUNCTION_LINES:
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        above = text[first - 2].strip() if first >= 2 else ""
        if not above.startswith("# long:"):
            found.append(
                f"{name}:{node.lineno}: function {node.name} of {length} lines (limit "
                f"{MAX_FUNCTION_LINES}): shorten it, or say why above its def with '# long: ...'"
            )
    return found


def test_modules_and_functions_within_the_limits():
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            found += oversized(path.read_text(encoding="utf-8"), name)
    assert not found, "size limits broken:\n" + "\n".join(found)


def _function(lines: int, *, comment: str | None = None, decorated: bool = False) -> str:
    head = [] if comment is None else [comment]
    head += ["@staticmethod"] if decorated else []
    body = [f"    x{i} = {i}" for i in range(lines - 1)]
    return "\n".join([*head, "def f():", *body]) + "\n"


def test_the_checker_flags_a_long_function():
    assert oversized(_function(MAX_FUNCTION_LINES), "ok.py") == []
    found = oversized(_function(MAX_FUNCTION_LINES + 1), "long.py")
    assert len(found) == 1 and "long.py:1: function f of 61 lines" in found[0]


@pytest.mark.parametrize("decorated", [False, True])
def test_a_long_comment_right_above_the_def_excuses_it(decorated):
    excused = _function(80, comment="# long: an argparse table", decorated=decorated)
    assert oversized(excused, "x.py") == []
    elsewhere = "# long: not right above\n\n" + _function(80, decorated=decorated)
    assert len(oversized(elsewhere, "x.py")) == 1
    other = _function(80, comment="# a plain comment", decorated=decorated)
    assert len(oversized(other, "x.py")) == 1


def test_the_checker_flags_a_long_module_and_nested_functions():
    source = "\n".join(f"x{i} = {i}" for i in range(MAX_MODULE_LINES + 1)) + "\n"
    found = oversized(source, "big.py")
    assert found == [f"big.py: module of {MAX_MODULE_LINES + 1} lines (limit 400): split it"]
    nested = "class A:\n" + "".join("    " + line + "\n" for line in _function(70).splitlines())
    assert [f.split(":")[1] for f in oversized(nested, "n.py")] == ["2"]
