"""Generated blocks of documentation pages (minimax_problems.pages): replaced in place, refused (and
the page left alone) when a marker is missing, duplicated or out of order."""

from __future__ import annotations

import pytest

from minimax_problems.pages import block, render_block, replace_block


def test_replace_block_keeps_the_page_and_refuses_a_missing_marker(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n<!-- a -->\nold\n<!-- /a -->\noutro\n")
    replace_block(page, ("<!-- a -->", "<!-- /a -->"), "new")
    assert page.read_text() == "intro\n<!-- a -->\nnew\n<!-- /a -->\noutro\n"
    with pytest.raises(ValueError, match=r"exactly one .<!-- b -->."):
        replace_block(page, ("<!-- b -->", "<!-- /b -->"), "x")
    assert page.read_text().count("new") == 1  # a refused write leaves the page alone


@pytest.mark.parametrize(
    "text",
    ["no markers", "<!-- /a --> x <!-- a -->", "<!-- a --> 1 <!-- /a --> <!-- a --> 2 <!-- /a -->"],
)
def test_malformed_blocks_are_refused(text):
    with pytest.raises(ValueError, match="exactly one"):
        block(text, ("<!-- a -->", "<!-- /a -->"))
    with pytest.raises(ValueError, match="exactly one"):
        render_block(text, ("<!-- a -->", "<!-- /a -->"), "x")
