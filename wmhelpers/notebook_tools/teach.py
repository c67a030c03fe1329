"""Put the package's own code on the notebook page.

The notebook teaches mechanisms (the straight-through sample, the z/a token interleaving, the
causal mask, the KV-cached step) that live in `wmhelpers/`, where they are tested. Rather than
copy them into cells, where the copy could drift from what actually runs, `show_source` renders
the function itself:

    wm.teach.show_source(wm.latent.straight_through_sample)
    wm.teach.show_source(wm.TransformerDynamics.step, lines=(1, 12))

In Jupyter the result displays as a Markdown ```python block: highlighted live, and stored in
the saved notebook as a `text/markdown` output, which GitHub and nbviewer render with
highlighting too. Anywhere else (a terminal, print()) it is the plain source text.
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


def show_source(obj, lines: tuple[int, int] | None = None, docstring: bool = True) -> SourceCode:
    """The source of a function, method or class, ready to display in a notebook cell.

    obj:       e.g. `wm.latent.straight_through_sample` or `wm.TransformerDynamics.step`.
    lines:     (first, last), 1-based and inclusive, counted from the `def` line, to show only
               part of a long function; None shows all of it.
    docstring: False drops the docstring (when the markdown above already says it).

    Returns a SourceCode: the last expression of a cell displays it as a highlighted Markdown
    code block; `print()` gives the plain text.
    """
    obj = inspect.unwrap(obj)
    src_lines, start = inspect.getsourcelines(obj)
    code = textwrap.dedent("".join(src_lines)).rstrip("\n").split("\n")
    if not docstring:
        code = _without_docstring(code, obj.__doc__)  # own docstring only: getdoc() would inherit one
    first = start
    if lines is not None:
        a, b = lines
        if not (1 <= a <= b):
            raise ValueError(f"lines={lines}: need 1 <= first <= last")
        if a > len(code):
            raise ValueError(f"lines={lines}: {getattr(obj, '__qualname__', obj)} has only {len(code)} lines")
        code = code[a - 1 : b]
        first = start + a - 1  # exact when docstring=True (the default); approximate otherwise
    where = f"{_package_relative(inspect.getsourcefile(obj) or '?')}:{first}"
    return SourceCode("\n".join(code), where, getattr(obj, "__qualname__", repr(obj)))


def _without_docstring(code: list[str], doc: str | None) -> list[str]:
    """Drop the first string-literal statement after the signature (the docstring) from `code`."""
    if not doc:
        return code
    for i, line in enumerate(code):
        stripped = line.lstrip()
        if stripped.startswith(('"""', "'''", 'r"""', "r'''")):
            quote = stripped.lstrip("r")[:3]
            body = stripped.lstrip("r")[3:]
            end = i if quote in body else next(j for j in range(i + 1, len(code)) if quote in code[j])
            return code[:i] + code[end + 1 :]
    return code
