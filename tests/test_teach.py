"""show_source puts the package's own code on the page: the real source, highlighted, findable."""

from __future__ import annotations

import inspect

import pytest

import wmhelpers as wm
from wmhelpers.models.masking import attention_mask
from wmhelpers.notebook_tools.teach import SourceCode, show_source


@pytest.mark.parametrize("obj", [wm.latent.straight_through_sample, wm.TransformerDynamics.tokens,
                                 attention_mask, wm.TransformerDynamics.step])
def test_show_source_is_the_functions_own_code(obj):
    shown = show_source(obj)
    assert isinstance(shown, SourceCode)
    body = inspect.getsource(obj).strip().splitlines()
    assert shown.text.splitlines()[0] == body[0].strip()  # starts at the (dedented) def line
    assert shown.text.splitlines()[-1].strip() == body[-1].strip()
    md = shown._repr_markdown_()
    assert md.startswith("```python\n") and md.rstrip().endswith("```")
    path, line = shown.where.split(":")
    assert path.startswith("wmhelpers/") and path.endswith(".py")
    with open(inspect.getsourcefile(obj)) as f:
        assert f.read().splitlines()[int(line) - 1].strip() == body[0].strip()  # the header's line is right


def test_plain_text_fallback_is_the_code_not_an_object_repr():
    shown = show_source(wm.latent.straight_through_sample)
    assert repr(shown) == str(shown)
    assert "def straight_through_sample" in str(shown) and "object at 0x" not in repr(shown)
    assert str(shown).splitlines()[0] == "# " + shown.where + "  (straight_through_sample)"


def test_code_with_backticks_cannot_close_the_fence():
    shown = SourceCode('x = "```"', "wmhelpers/x.py:1", "x")
    md = shown._repr_markdown_()
    assert md.startswith("````python\n") and md.endswith("\n````")
