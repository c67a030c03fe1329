"""Progress bars that read well everywhere: a widget in Jupyter/Colab when ipywidgets is there,
plain text otherwise, and always plain text when WM_PROGRESS=text (used for the committed
executed notebook, so the saved bars read in a static render)."""

from __future__ import annotations

import os


def progress_bar(iterable=None, **kwargs):
    if os.environ.get("WM_PROGRESS", "").lower() == "text":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 30.0)  # a handful of lines in the saved notebook, not thousands
        kwargs.setdefault("ascii", True)
        return tqdm(iterable, **kwargs)
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    return tqdm(iterable, **kwargs)
