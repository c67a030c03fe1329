"""The notebook's runner and checker (the CLI's run-notebook and check-notebook), and the
deliverables checklist of its last cell.

`check_notebook`: every code cell executed in order without error, every deliverable figure an
image, no widget-only output, a conclusion of MIN_CONCLUSION_WORDS, and every measured number in
the markdown shown by an output (`unsupported_numbers`). `run_notebook` executes it with nbclient
and reports the running cell, section and progress bar on stderr (`RunProgress`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from .progress import LIVE_ENV, LIVE_MARK

DELIVERABLE_TAGS = ("figure-psnr", "figure-gap", "figure-efficiency", "figure-filmstrip", "figure-attention-cost",
                    "figure-markov", "figure-memory")
PRINT_WIDTH = 110  # characters: a printed line this wide fits a 1000 px page
MIN_CONCLUSION_WORDS = 60


def check_notebook(path) -> list[str]:
    """Problems found (empty list: the notebook passes)."""
    path = Path(path)
    nb = json.loads(path.read_text())
    problems = []
    cells = nb.get("cells", [])
    code = [c for c in cells if c.get("cell_type") == "code"]
    counts = [c.get("execution_count") for c in code]
    unexecuted = [i for i, n in enumerate(counts) if n is None]
    if unexecuted:
        problems.append(f"{len(unexecuted)} code cell(s) not executed (first: code cell {unexecuted[0] + 1})")
    elif counts != list(range(1, len(code) + 1)):
        problems.append(f"execution counts are not 1..{len(code)} in order "
                        f"(run it in a fresh kernel, top to bottom): {counts[:12]}...")
    tagged: dict[str, bool] = {}
    for i, cell in enumerate(code):
        outputs = cell.get("outputs", [])
        for out in outputs:
            if out.get("output_type") == "error":
                problems.append(f"code cell {i + 1} has an error: {out.get('ename')}: {out.get('evalue')}")
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data and not ({"text/plain", "image/png"} & set(data) - {
                    "application/vnd.jupyter.widget-view+json"}):
                problems.append(f"code cell {i + 1} has a widget-only output (not readable in a static render)")
        long = [x for o in outputs if o.get("output_type") == "stream" for x in "".join(o["text"]).splitlines()
                if len(x) > PRINT_WIDTH]
        if long:  # a printed line wider than a 1000 px page wraps or scrolls
            problems.append(f"code cell {i + 1} prints {len(long)} line(s) over {PRINT_WIDTH} characters")
        has_image = any("image/png" in o.get("data", {}) for o in outputs)
        for tag in cell.get("metadata", {}).get("tags", []):
            if tag in DELIVERABLE_TAGS:
                tagged[tag] = tagged.get(tag, False) or has_image
    for tag in DELIVERABLE_TAGS:
        if tag not in tagged:
            problems.append(f"no code cell tagged {tag!r} (a deliverable figure)")
        elif not tagged[tag]:
            problems.append(f"the cell tagged {tag!r} has no image output")
    problems += unsupported_numbers(nb)
    conclusion = [conclusion_text(c) for c in cells if "conclusion" in c.get("metadata", {}).get("tags", [])]
    if not conclusion:
        problems.append("no cell tagged 'conclusion'")
    elif not MIN_CONCLUSION_WORDS <= len(conclusion[0].split()) <= 220 or "TODO" in conclusion[0]:
        problems.append(f"the conclusion is not one finished paragraph of at most 220 words "
                        f"({len(conclusion[0].split())} words)")
    elif "\n" in conclusion[0].strip():
        problems.append("the conclusion is more than one paragraph")
    return problems


def conclusion_text(cell: dict) -> str:
    """The conclusion's words: a markdown cell's source, or what a code cell displayed as Markdown
    (the conclusion is written by the run: verdict.show_conclusion)."""
    if cell.get("cell_type") == "markdown":
        return "".join(cell.get("source", ""))
    parts = [out.get("data", {}).get("text/markdown", "") for out in cell.get("outputs", [])]
    return "\n".join("".join(p) if isinstance(p, list) else p for p in parts)


# ---- Numbers in the prose must come from the run -----------------------------------------------
# A measured result in prose: a number right before a unit ("16.9 ms", "2 s", "+0.2 dB") or
# glued to a ratio sign ("0.97×", "1.8x"). "64x64" and "32×32" are sizes, hence the lookahead.
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
MEASURED = re.compile(rf"(?<![\w.~≈])({_NUMBER})(?:\s?(dB|ms|s)|(×|x))(?![\w×])")
OUTPUT_NUMBER = re.compile(rf"(?<![\d.])(?:{_NUMBER})")
CITED_TAG = "cited-numbers"  # a markdown cell quoting other work's numbers opts out with this tag


def _output_text(nb: dict) -> str:
    """Every text/plain, text/markdown and stream output of the notebook, joined."""
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            texts = [out.get("text", "")] if out.get("output_type") == "stream" else [
                out.get("data", {}).get(m, "") for m in ("text/plain", "text/markdown")]
            parts += ["".join(t) if isinstance(t, list) else t for t in texts]
    return "\n".join(parts)


def _as_number(text: str) -> float:
    return float(text.replace(",", ""))


def unsupported_numbers(nb: dict) -> list[str]:
    """Measured results in markdown ("16.9 ms", "0.97x") that no output shows at their precision
    ("26.9 dB" is shown by 26.93), sign ignored; "~30 s", "≈30 s" and cells tagged CITED_TAG are exempt."""
    shown = [_as_number(m) for m in OUTPUT_NUMBER.findall(_output_text(nb))]
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown" or CITED_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        text = "".join(cell.get("source", ""))
        for match in MEASURED.finditer(text):
            number = match.group(1)
            stated = _as_number(number)
            half_unit = 0.5 * 10.0 ** -(len(number.split(".")[1]) if "." in number else 0)
            if not any(abs(v - stated) <= half_unit + 1e-9 for v in shown):
                problems.append(f"markdown cell {i + 1} states {match.group(0)!r}, which no output of this "
                                f"notebook shows (print it from the run, write '~{number}' if it is an "
                                f"estimate, or tag the cell {CITED_TAG!r} if it is quoted)")
    return problems


# ---- Running it --------------------------------------------------------------------------------
NOTEBOOK = "p04_transformer_backbone.ipynb"


def cell_sections(nb) -> list[str]:
    """The '## ' heading each cell sits under ("setup" before the first heading)."""
    heading, out = "setup", []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("## "):
                    heading = line[3:].strip()
        out.append(heading)
    return out


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:d}:{s:02d}"


class RunProgress:
    """Where `run-notebook` is, on stderr: nbclient's `on_cell_execute` hook calls `cell_started`
    and the client's output hook hands it the kernel's progress-bar states (`bar`). On a terminal
    one line rewritten in place; in a log a line per section and a bar state at most every
    `log_every` seconds."""

    def __init__(self, nb, stream=None, live: bool | None = None, log_every: float = 30.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.sections = cell_sections(nb)
        code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        self.code_number = {idx: k + 1 for k, idx in enumerate(code)}
        self.n_code = len(code)
        self.start = self.section_start = time.monotonic()
        self.section, self.cell = None, 0
        self.log_every = log_every
        self.state, self._logged, self._logged_at = None, None, 0.0

    def line(self) -> str:
        now = time.monotonic()
        head = f"[{_clock(now - self.start):>5s}] code cell {self.cell}/{self.n_code} · {self.section}"
        if not self.live:
            return head
        head += f" ({_clock(now - self.section_start)} in this section)"
        if self.state:
            head += f" · {self.state}"
        width = shutil.get_terminal_size((120, 24)).columns - 1
        return head if len(head) <= width else head[: max(width - 1, 0)] + "…"  # a wrapped line cannot be rewritten

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def cell_started(self, cell=None, cell_index: int = 0, **_) -> None:
        """nbclient's on_cell_execute hook."""
        self.cell = self.code_number.get(cell_index, self.cell)
        self.state, self._logged_at = None, time.monotonic()  # a bar belongs to the cell that drew it
        section = self.sections[cell_index]
        if section != self.section:
            previous = time.monotonic() - self.section_start
            had_one = self.section is not None
            self.section, self.section_start = section, time.monotonic()
            if not self.live:
                self._write(self.line() + (f" (previous section {_clock(previous)})" if had_one else "") + "\n")
        if self.live:
            self._write("\r" + self.line() + "\x1b[K")  # \x1b[K clears what a longer line left behind

    def bar(self, state: str) -> None:
        """The running cell's progress bar is at `state`: rewrite the live line, or (in a log) write the
        state when it changed and `log_every` seconds have passed since the last one."""
        self.state = state
        if self.live:
            self._write("\r" + self.line() + "\x1b[K")
        elif state != self._logged and time.monotonic() - self._logged_at >= self.log_every:
            self._logged, self._logged_at = state, time.monotonic()
            self._write(f"[{_clock(time.monotonic() - self.start):>5s}]   {state}\n")

    def finish(self, ok: bool = True) -> None:
        end = "\n" if self.live else ""
        word = "finished" if ok else "stopped at"
        self._write(end + f"[{_clock(time.monotonic() - self.start):>5s}] {word} code cell "
                    f"{self.cell}/{self.n_code}\n")


def live_states(text: str) -> tuple[str, list[str]]:
    """A stream output's text without its progress-bar lines (`progress.LIVE_MARK`), and their states."""
    kept, states = [], []
    for line in text.splitlines(keepends=True):
        before, mark, state = line.partition(LIVE_MARK)
        kept.append(before if mark else line)
        if mark:
            states.append(state.strip())
    return "".join(kept), states


# The kernel's log lines that say nothing about the run (jupyter_client starts kernels on local TCP)
KERNEL_NOISE = ("running over TCP without encryption",)


def kernel_log(text: str) -> str:
    """The kernel's stderr without the noise lines (KERNEL_NOISE)."""
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in KERNEL_NOISE))


def _client_class(reporter):
    """nbclient's NotebookClient whose output hook takes the progress-bar lines out of every stream
    message as it arrives and hands their states to `reporter` (a RunProgress, or None)."""
    from nbclient import NotebookClient

    class ReportingClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if msg.get("msg_type") == "stream":
                text, states = live_states(msg["content"].get("text", ""))
                if states and reporter is not None:
                    reporter.bar(states[-1])
                if not text:
                    return None
                msg["content"]["text"] = text
            return super().output(outs, msg, display_id, cell_index)

    return ReportingClient


def run_notebook(path=NOTEBOOK, out=None, smoke: bool = False, timeout: int | None = None,
                 progress=True) -> dict:
    """Execute the notebook top to bottom in a fresh kernel (nbclient), from the repository root, with
    text progress bars; write it to `out` (default: in place). progress: True reports on stderr, a
    stream reports there, False is silent. Returns {"seconds", "sections": {heading: seconds}}."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    start = time.time()
    reporter = RunProgress(nb, stream=None if progress is True else progress) if progress else None
    hooks = {"on_cell_execute": reporter.cell_started} if reporter else {}
    ok = False
    # the kernel inherits these: one final line per bar, plus its live state as marked lines (live_states)
    env = {"WM_PROGRESS": "text", LIVE_ENV: "1", "WM_SMOKE": "1" if smoke else os.environ.get("WM_SMOKE", "0")}
    with mock.patch.dict(os.environ, env), tempfile.TemporaryFile("w+") as klog:
        try:
            _client_class(reporter)(nb, timeout=timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent.resolve())}},
                                    **hooks).execute(stderr=klog)  # the kernel's stderr: kept, not shown
            ok = True
        finally:
            if reporter is not None:
                reporter.finish(ok)
            klog.seek(0)
            tail = kernel_log(klog.read())[-4000:]
            if not ok and tail.strip():  # the kernel's own words may say why (a crash, a missing package)
                print(f"kernel log (last lines):\n{tail}", file=sys.stderr)
    nbformat.write(nb, Path(out) if out else path)
    return {"seconds": time.time() - start, "sections": section_times(nb)}


def section_times(nb) -> dict:
    """Seconds spent in the code cells under each '## ' heading (from nbclient's timing metadata)."""
    from datetime import datetime

    times = {}
    for cell, heading in zip(nb.cells, cell_sections(nb)):
        if cell.cell_type == "code":
            ex = cell.get("metadata", {}).get("execution", {})
            a, b = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
            if a and b:
                secs = (datetime.fromisoformat(b.replace("Z", "+00:00"))
                        - datetime.fromisoformat(a.replace("Z", "+00:00"))).total_seconds()
                times[heading] = times.get(heading, 0.0) + secs
    return times


def deliverables_checklist(cfg, notebook=NOTEBOOK) -> str:
    """The deliverables list, each tick computed: the files on disk (with their sizes) and the
    notebook's tagged cells (a deliverable figure or the conclusion exists as a tagged cell)."""
    files = [("Transformer checkpoint", f"{cfg.checkpoint_dir}/p04_transformer.pt"),
             ("P03 RSSM checkpoint", f"{cfg.checkpoint_dir}/p03_rssm.pt"),
             ("results for P05", f"{cfg.checkpoint_dir}/p04_results.json"),
             ("training seeds", f"{cfg.checkpoint_dir}/p04_seeds.json")]
    lines = []
    for item, path in files:
        ok = os.path.exists(path)
        size = f" ({os.path.getsize(path) / 1e6:.1f} MB)" if ok else " (missing)"
        lines.append(f"[{'x' if ok else ' '}] {item}: {path}{size}")
    tags = {t for c in json.loads(Path(notebook).read_text())["cells"] for t in c["metadata"].get("tags", [])}
    for tag in (*DELIVERABLE_TAGS, "conclusion"):
        lines.append(f"[{'x' if tag in tags else ' '}] cell tagged {tag!r} in {notebook}")
    return "\n".join(lines)
