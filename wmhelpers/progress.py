"""Progress bars that read well everywhere.

- Jupyter / Colab (ipywidgets present): a live widget bar (tqdm.auto).
- A terminal: tqdm's live text bar.
- WM_PROGRESS=text (set by `python -m wmhelpers run-notebook`, which writes the committed
  executed notebook): nothing while the loop runs and ONE final line on stdout when it ends,
  e.g. `training transformer: 100%|##########| 1750/1750 [05:31<00:00, 5.28it/s, recon=...]`.
  A live bar would be saved as dozens of stacked lines, and on stderr, which GitHub and nbviewer
  show as a pink block; the run's liveness comes from run-notebook's own progress line instead:
  with WM_PROGRESS_LIVE set (run-notebook sets it) the bar also prints its current state, e.g.
  `training transformer:  45%|####5     | 790/1750 [02:31<03:03, 5.2it/s]`, as one line marked
  with LIVE_MARK (at most twice a second); run-notebook reads those lines off the kernel's output
  stream, shows them in the terminal and takes them out before the output is saved.
"""

from __future__ import annotations

import os
import sys
import time

from tqdm.std import tqdm as text_tqdm

LIVE_ENV = "WM_PROGRESS_LIVE"  # set: a text-mode bar also prints its live state, marked
LIVE_MARK = "wm-progress: "  # what marks such a line (notebook_runner.live_states takes it out)
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
        """With $WM_PROGRESS_LIVE set, print the bar's state as one LIVE_MARK line, for run-notebook."""
        now = time.monotonic()
        if not os.environ.get(LIVE_ENV) or (not force and now - self._shared_at < SHARE_EVERY_S):
            return
        self._shared_at = now
        self.fp.write(f"{LIVE_MARK}{self.__str__()}\n")  # one write: never split across two stream messages
        self.fp.flush()

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
