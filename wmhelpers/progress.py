"""Progress bars that read well everywhere.

- Jupyter / Colab (ipywidgets present): a live widget bar (tqdm.auto).
- A terminal: tqdm's live text bar.
- WM_PROGRESS=text (set by `python -m wmhelpers run-notebook`, which writes the committed
  executed notebook): nothing while the loop runs and ONE final line on stdout when it ends,
  e.g. `training transformer: 100%|##########| 1750/1750 [05:31<00:00, 5.28it/s, recon=...]`.
  A live bar would be saved as dozens of stacked lines, and on stderr, which GitHub and nbviewer
  show as a pink block; the run's liveness comes from run-notebook's own progress line instead:
  with WM_PROGRESS_FILE set (run-notebook sets it) the bar also writes its current state, e.g.
  `training transformer:  45%|####5     | 790/1750 [02:31<03:03, 5.2it/s]`, into that file (at
  most twice a second), and run-notebook shows it in the terminal. Nothing of it enters the notebook.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.std import tqdm as text_tqdm

PROGRESS_FILE_ENV = "WM_PROGRESS_FILE"  # where a text-mode bar writes its live state (a side channel)
SHARE_EVERY_S = 0.5


class FinalLineBar(text_tqdm):
    """A tqdm bar that prints nothing while it runs and exactly one line when it closes.

    It keeps tqdm's whole API (iteration, update, set_postfix, total, desc), so the code that
    drives it does not know the difference; the final line shows the overall rate (not the
    last moments' rate), because tqdm closes with its smoothing switched off.
    """

    _closing = False
    _shared_at = float("-inf")

    def display(self, msg=None, pos=None):
        if not self._closing or msg == "":
            if msg != "":
                self.share()
            return msg != ""  # while running: stay silent (but tell tqdm the "display" happened)
        self.fp.write(self.__str__() if msg is None else msg)  # no leading '\r': one clean line
        return True

    def share(self, force: bool = False) -> None:
        """Write the bar's state into $WM_PROGRESS_FILE (if set), for run-notebook to show live;
        replaced atomically, so a reader never sees half a line."""
        path = os.environ.get(PROGRESS_FILE_ENV)
        now = time.monotonic()
        if not path or (not force and now - self._shared_at < SHARE_EVERY_S):
            return
        self._shared_at = now
        try:
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                f.write(self.__str__())
            os.replace(tmp, path)
        except OSError:
            pass  # the side channel is a courtesy: never fail the loop for it

    def close(self):
        self._closing = True
        super().close()  # with leave=True calls display(pos=0) once, then writes the newline


def progress_bar(iterable=None, **kwargs):
    """tqdm for this project: see the module docstring for what it shows where."""
    if os.environ.get("WM_PROGRESS", "").lower() == "text":
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("file", sys.stdout)
        return FinalLineBar(iterable, **kwargs)
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = text_tqdm
    return tqdm(iterable, **kwargs)
