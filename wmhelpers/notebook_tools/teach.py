"""`show_source`: put the package's own (tested) code on the notebook page, as a Markdown ```python
block in Jupyter (saved as text/markdown, highlighted on GitHub) and plain text elsewhere.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path


class SourceCode:
    """Source text of one function with where it lives; displays as highlighted code.

    `text` is the (dedented) code, `where` a `path:line` header such as
    `wmhelpers/latent.py:33`; the header is shown as the first comment line of the block so a
    student can find the function in the package.
    """

    def __init__(self, text: str, where: str, name: str):
        self.text, self.where, self.name = text, where, name

    def header(self) -> str:
        return f"# {self.where}  ({self.name})"

    def __str__(self) -> str:
        return f"{self.header()}\n{self.text}"

    # IPython shows __repr__ as the text/plain fallback: the code itself, never an object address
    __repr__ = __str__

    def _repr_markdown_(self) -> str:
        # A fence longer than any backtick run in the code, so the code cannot close it early.
        longest = max((len(m) for m in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"{fence}python\n{self}\n{fence}"


def _package_relative(path: str) -> str:
    """`/abs/.../wmhelpers/latent.py` -> `wmhelpers/latent.py` (the path a student sees in the repo)."""
    p = Path(path)
    parts = p.parts
    if "wmhelpers" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("wmhelpers"):])
    return p.name


def show_source(obj) -> SourceCode:
    """The source of a function, method or class (e.g. `wm.TransformerDynamics.step`), ready to
    display in a notebook cell: the last expression of a cell displays it as a highlighted Markdown
    code block; `print()` gives the plain text."""
    obj = inspect.unwrap(obj)
    src_lines, start = inspect.getsourcelines(obj)
    code = textwrap.dedent("".join(src_lines)).rstrip("\n")
    where = f"{_package_relative(inspect.getsourcefile(obj) or '?')}:{start}"
    return SourceCode(code, where, getattr(obj, "__qualname__", repr(obj)))
