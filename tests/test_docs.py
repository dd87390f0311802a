"""The built docs site: math rendered offline, no emphasis that Markdown made out of math, the CLI
reference generated."""

from __future__ import annotations

import html
import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    exe = str(mkdocs) if mkdocs.exists() else shutil.which("mkdocs")
    if exe is None:
        pytest.fail("mkdocs is not installed: run ./run test, which installs the dev extras")
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [exe, "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def _sources() -> str:
    """Everything emphasis may legitimately come from: the Markdown pages and the docstrings."""
    parts = [p.read_text() for p in (ROOT / "docs").rglob("*.md")]
    parts += [p.read_text() for p in (ROOT / "minimax").rglob("*.py")]
    return "\n".join(parts)


def test_no_stray_emphasis_from_math(site):
    sources = _sources()
    stray = []
    for page in site.rglob("*.html"):
        text = page.read_text()
        text = re.sub(r"<(pre|code)\b.*?</\1>", "", text, flags=re.S)
        for inner in re.findall(r"<em>(.*?)</em>", text, flags=re.S):
            plain = html.unescape(re.sub(r"<[^>]+>", "", inner))
            if plain == "required":  # mkdocstrings marks required parameters so
                continue
            if f"*{plain}*" not in sources and f"_{plain}_" not in sources:
                stray.append((page.relative_to(site).as_posix(), plain))
    assert not stray, f"emphasis made out of math (write it as $…$): {stray[:10]}"


def test_math_is_rendered_with_the_vendored_katex(site):
    theory = (site / "theory" / "index.html").read_text()
    assert 'class="arithmatex"' in theory
    assert "assets/katex/katex.min.js" in theory and "cdn" not in theory.lower()
    for name in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "LICENSE"):
        assert (site / "assets" / "katex" / name).exists(), name
    assert list((site / "assets" / "katex" / "fonts").glob("*.woff2"))


def test_cli_reference_is_generated_from_the_parser(site):
    page = (site / "reference" / "cli" / "index.html").read_text()
    assert "minimax-cli-reference" not in page
    for command in ("train", "evaluate", "compare", "demo"):
        assert f"minimax {command}" in page, command


@pytest.mark.parametrize("module", ["minimax", "minimax.extend", "minimax.linalg"])
def test_api_reference_documents_the_public_names(site, module):
    names = importlib.import_module(module).__all__
    page = (site / "reference" / module.replace("minimax.", "") / "index.html").read_text()
    missing = [n for n in names if n != "__version__" and f'id="{module}.{n}"' not in page]
    assert missing == [], f"{module}: not in the API reference: {missing}"


_RENDER = """
const katex = require(process.argv[process.argv.length - 1]);
const items = JSON.parse(require("fs").readFileSync(0, "utf8"));
const bad = [];
for (const [page, tex, display] of items) {
  try { katex.renderToString(tex, {displayMode: display, throwOnError: true}); }
  catch (e) { bad.push([page, tex.slice(0, 80), e.message.slice(0, 120)]); }
}
console.log(JSON.stringify(bad));
"""


def test_every_formula_parses_with_the_vendored_katex(site):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (needed to run KaTeX outside a browser)")
    items = []
    for page in site.rglob("*.html"):
        for tag in re.findall(r'class="arithmatex">(.*?)</(?:span|div)>', page.read_text(), re.S):
            tex = html.unescape(tag).strip()
            items.append([page.name, tex[2:-2], tex.startswith("\\[")])
    assert len(items) > 50
    katex = str(site / "assets" / "katex" / "katex.min.js")
    r = subprocess.run(
        [node, "-e", _RENDER, katex],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
