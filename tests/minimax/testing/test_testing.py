"""minimax.testing as a whole: importable without pytest, and its tutorial docs/testing.md runs
(every python block, with the outputs it quotes)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_importable_without_pytest():
    code = "import sys; sys.modules['pytest'] = None; import minimax.testing"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr


BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_docs_testing_blocks_run():
    text = (ROOT / "docs" / "testing.md").read_text()
    blocks = BLOCK.findall(text)
    assert len(blocks) >= 8
    namespace: dict = {"__name__": "docs_testing"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/testing.md[block {i}]", "exec"), namespace)
        except Exception as err:  # pragma: no cover - the message is the point
            pytest.fail(f"docs/testing.md block {i} failed: {err!r}\n{code}")
    # the output quoted in the docs has the shape this run produces: hypothesis shrinks to two
    # tied quadratic pieces in R² (which of the equivalent minimal examples it stops at can vary)
    failure = str(namespace["danskin_failure"])
    assert failure.splitlines()[0] in text
    assert "max_of_pieces(a=[[1.0, 1.0]]" in failure and "k = 2 pieces, θ ∈ R^2, B = 1" in failure
    assert "R'(θ; −d̂) = Σ_b max_δ ⟨−d̂, ∇θ g⟩/B = +0" in failure
    assert "MeanGradient()" in str(namespace["mean_failure"])
