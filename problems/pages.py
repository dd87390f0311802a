"""Generated blocks of documentation pages: the text between a pair of HTML comment markers
(``<!-- NAME -->`` … ``<!-- /NAME -->``) is written by a command (the demo's publisher, a
benchmark's ``--publish``) and checked by a test; the rest of the page is left alone.

Public API::

    block(text, markers) -> str                       the block's content, stripped
    render_block(text, markers, content) -> str       text with the block's content replaced
    replace_block(page, markers, content)             the same, written to a page atomically
    render_blocks(text, prefix, generated, names=None) -> str   every ``<!-- PREFIX:NAME -->`` block
    publish_pages(root, targets, prefix, generated, check) -> [stale pages]   rewrite or check
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .files import atomic_write_text

__all__ = ["block", "publish_pages", "render_block", "render_blocks", "replace_block"]


def _check(text: str, markers: tuple[str, str]) -> None:
    begin, end = markers
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"the page needs exactly one '{begin}' ... '{end}' block, in that order")


def block(text: str, markers: tuple[str, str]) -> str:
    """The stripped text between ``markers`` in ``text``; a ValueError naming a missing marker."""
    _check(text, markers)
    return text.split(markers[0], 1)[1].split(markers[1], 1)[0].strip()


def render_block(text: str, markers: tuple[str, str], content: str) -> str:
    """``text`` with the block between ``markers`` replaced by ``content`` (one line after the
    opening marker, one newline before the closing one)."""
    _check(text, markers)
    begin, end = markers
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    return f"{head}{begin}\n{content}\n{end}{tail}"


def replace_block(page: Path, markers: tuple[str, str], content: str) -> None:
    """`render_block` on the file ``page``, written atomically (a refused page is untouched)."""
    text = page.read_text(encoding="utf-8")
    atomic_write_text(page, render_block(text, markers, content))


def render_blocks(
    text: str, prefix: str, generated: Mapping[str, str], names: Sequence[str] | None = None
) -> str:
    """``text`` with each block ``<!-- PREFIX:NAME -->`` … ``<!-- /PREFIX:NAME -->`` of ``names``
    (default: all of ``generated``) replaced; a missing pair of markers is a ValueError."""
    for name in names if names is not None else list(generated):
        markers = (f"<!-- {prefix}:{name} -->", f"<!-- /{prefix}:{name} -->")
        text = render_block(text, markers, generated[name])
    return text


def publish_pages(
    root: Path,
    targets: Mapping[str, Sequence[str]],
    prefix: str,
    generated: Mapping[str, str],
    check: bool,
) -> list[str]:
    """For each page ``root / rel`` of ``targets`` (rel → block names): render its blocks and,
    unless ``check``, write the page when it changed. Returns the pages that differed."""
    stale = []
    for rel, names in targets.items():
        path = root / rel
        text = path.read_text(encoding="utf-8")
        new = render_blocks(text, prefix, generated, names)
        if new != text:
            stale.append(rel)
            if not check:
                atomic_write_text(path, new)
    return stale
