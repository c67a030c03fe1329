"""`show_source`: put the package's own (tested) code on the notebook page, as a Markdown ```python
block in Jupyter (saved as text/markdown, highlighted on GitHub) and plain text elsewhere.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path


class SourceCode:
    """Source text of one function, headed by its `path:line`; displays as highlighted code."""

    def __init__(self, text: str, where: str, name: str):
        self.text, self.where, self.name = text, where, name

    def __str__(self) -> str:
        return f"# {self.where}  ({self.name})\n{self.text}"

    # IPython shows __repr__ as the text/plain fallback: the code itself, never an object address
    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        # A fence longer than any backtick run in the code, so the code cannot close it early.
        longest = max((len(m) for m in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}python\n{self}\n{fence}"


ROOT = Path(__file__).resolve().parents[2]  # the folder holding wmhelpers/: paths as a student sees them


def show_source(obj) -> SourceCode:
    """The source of a function, method or class (e.g. `wm.TransformerDynamics.step`), ready to
    display in a notebook cell: the last expression of a cell displays it as a highlighted Markdown
    code block; `print()` gives the plain text."""
    obj = inspect.unwrap(obj)
    src_lines, start = inspect.getsourcelines(obj)
    code = textwrap.dedent("".join(src_lines)).rstrip("\n")
    where = f"{Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT).as_posix()}:{start}"
    return SourceCode(code, where, getattr(obj, "__qualname__", repr(obj)))
