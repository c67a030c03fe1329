"""Progress bars: tqdm.auto in Jupyter and terminals. With WM_PROGRESS=text (run-notebook) a bar prints
ONE final line on stdout, and with WM_PROGRESS_LIVE also its state as a LIVE_MARK line (at most
twice a second), which run-notebook shows in the terminal and takes out of the saved output.
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
    """A tqdm bar that prints nothing while it runs and one line (the overall rate) when it closes."""

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
