"""Docs that contain code are executed: every ```python block, in order, in one namespace."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def run_markdown(name: str) -> dict:
    text = (DOCS / name).read_text()
    blocks = BLOCK.findall(text)
    assert blocks, f"{name} has no python blocks"
    namespace: dict = {"__name__": f"docs.{name}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{name}[block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            pytest.fail(f"{name} block {i} failed: {e!r}\n{code}")
    return namespace


def test_tutorial_runs():
    ns = run_markdown("tutorial.md")
    assert ns["report"].robust_loss_after < ns["first"].robust_loss


def test_custom_loop_page_runs():
    ns = run_markdown("custom-loop.md")
    assert ns["result"].robust_acc <= ns["result"].clean_acc
    assert ns["record"]["threat_model"] == "Linf"


def test_worst_group_page_runs():
    ns = run_markdown("worst-group.md")
    assert ns["last"].robust_loss < ns["first"].robust_loss
    assert float(ns["ddi"].norm) > 0 and float(ns["everything"].norm) < 1e-12
