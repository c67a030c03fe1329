"""`python -m wmhelpers check-notebook PATH`: the instructor's check of an executed notebook.

Passes when every code cell was executed, in order (execution counts 1..N), no cell has an
error output, every cell tagged as a deliverable figure holds an image, no output is a widget
with no static fallback, the conclusion (the cell tagged "conclusion": a code cell whose Markdown
output the run wrote, or a markdown cell) has its words, and
every measured number the markdown states (see `unsupported_numbers`) appears in an output.

`python -m wmhelpers run-notebook` executes it (`run_notebook`) and says, while it runs, which
cell and section it is in, the time spent, and inside a long cell the state of its progress bar
(training step count, rate and ETA) (`RunProgress`). The kernel's own log (its stderr, e.g.
jupyter's "running over TCP without encryption" warning) is not shown unless the run fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

DELIVERABLE_TAGS = ("figure-psnr", "figure-gap", "figure-efficiency", "figure-filmstrip", "figure-attention-cost",
                    "figure-markov", "figure-memory")
MIN_CONCLUSION_WORDS = 60


def check_notebook(path) -> list[str]:
    """Problems found (empty list: the notebook passes)."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{path}: cannot read the notebook ({exc})"]
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
    conclusion = [c for c in cells if "conclusion" in c.get("metadata", {}).get("tags", [])]
    if not conclusion:
        problems.append("no cell tagged 'conclusion'")
    else:
        text = conclusion_text(conclusion[0])
        if len(text.split()) < MIN_CONCLUSION_WORDS or "TODO" in text:
            problems.append(f"the conclusion is empty or unfinished ({len(text.split())} words)")
    return problems


def conclusion_text(cell: dict) -> str:
    """The conclusion's words: a markdown cell's source, or what a code cell displayed as Markdown
    (the conclusion is written by the run: verdict.show_conclusion)."""
    if cell.get("cell_type") == "markdown":
        return "".join(cell.get("source", ""))
    parts = [out.get("data", {}).get("text/markdown", "") for out in cell.get("outputs", [])]
    return "\n".join("".join(p) if isinstance(p, list) else p for p in parts)


# ---------------------------------------------------------------------------------------------
# Numbers in the prose must come from the run
# ---------------------------------------------------------------------------------------------
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
    """Measured results stated in markdown that no output of this notebook shows.

    A stated number counts as shown when some number in the outputs rounds to it at the
    precision it is written with ("26.9 dB" is shown by a printed 26.93; "27 dB" is not),
    sign ignored. Exempt: approximations written "~30 s" or "≈30 s", and markdown cells tagged
    "cited-numbers" (numbers quoted from papers or from earlier runs).
    """
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


# ---------------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------------
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


# A tqdm bar's text: "desc:  45%|####5     | 790/1750 [02:31<03:03, 5.2it/s]" (or "790it [02:31, 5.2it/s]")
BAR = re.compile(r"\d+%\||\d+(?:/\d+)?(?:it)? \[\d+:\d+")


def bar_state(text: str) -> str | None:
    """The latest progress-bar state in an output text (tqdm rewrites its line with '\\r'), or None."""
    for part in reversed(re.split(r"[\r\n]", text)):
        part = part.strip()
        if part and BAR.search(part):
            return part
    return None


class RunProgress:
    """Where `run-notebook` is, for the person waiting on it (the notebook itself prints nothing
    live: its progress bars only leave a final line).

    On a terminal: one line, rewritten in place every second, with the running cell's progress bar
    when it has one (cut to the terminal's width):
        [ 4:12] code cell 14/38 · 3. Train the Transformer (1:55 in this section) · training
                transformer:  45%|####5     | 790/1750 [02:31<03:03, 5.2it/s]
    Piped to a file or CI log (no '\\r' there): one line as each section starts, the bar's state at
    most every `log_every` seconds while it changes, then a total:
        [ 4:12] code cell 14/38 · 3. Train the Transformer (previous section 0:41)
        [ 4:42]   training transformer:  12%|#2        | 210/1750 [00:30<03:40, 7.0it/s]
    The bar's state comes from `progress_file` (written by wmhelpers.progress's text-mode bars, see
    WM_PROGRESS_FILE) or from any tqdm bar in the cell's outputs (`output`).
    Hook it into nbclient with `on_cell_execute=p.cell_started`, `on_cell_executed=p.cell_done`.
    """

    def __init__(self, nb, stream=None, live: bool | None = None, tick: float = 1.0, progress_file=None,
                 log_every: float = 30.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.sections = cell_sections(nb)
        code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        self.code_number = {idx: k + 1 for k, idx in enumerate(code)}
        self.n_code = len(code)
        self.start = self.section_start = time.monotonic()
        self.section, self.cell = None, 0
        self.tick = tick if self.live else min(tick, log_every)
        self.progress_file = Path(progress_file) if progress_file else None
        self.log_every = log_every
        self.bar, self._bar_seen, self._bar_logged, self._logged_at = None, None, None, 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ticker = None

    def line(self) -> str:
        now = time.monotonic()
        head = f"[{_clock(now - self.start):>5s}] code cell {self.cell}/{self.n_code} · {self.section}"
        if not self.live:
            return head
        head += f" ({_clock(now - self.section_start)} in this section)"
        if self.bar:
            head += f" · {self.bar}"
        width = shutil.get_terminal_size((120, 24)).columns - 1
        return head if len(head) <= width else head[: max(width - 1, 0)] + "…"  # a wrapped line cannot be rewritten

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    # ---- the running cell's progress bar ---------------------------------------------------------------
    def output(self, text: str) -> None:
        """A cell printed `text`: remember the latest progress-bar state in it, if any."""
        state = bar_state(text)
        if state:
            self.bar = state

    def _read_progress_file(self) -> None:
        if self.progress_file is None:
            return
        try:
            stamp = self.progress_file.stat().st_mtime_ns
            if stamp != self._bar_seen:
                self._bar_seen = stamp
                self.output(self.progress_file.read_text())
        except OSError:
            pass

    def _clear_bar(self) -> None:
        self.bar = self._bar_logged = None
        self._logged_at = time.monotonic()  # in a log, a cell's first bar state comes `log_every` s in
        if self.progress_file is not None:
            try:
                self.progress_file.unlink()
            except OSError:
                pass

    # ---- nbclient's hooks -------------------------------------------------------------------------------
    def cell_started(self, cell=None, cell_index: int = 0, **_) -> None:
        self.cell = self.code_number.get(cell_index, self.cell)
        self._clear_bar()  # a bar belongs to the cell that drew it
        section = self.sections[cell_index]
        if section != self.section:
            previous = time.monotonic() - self.section_start
            had_one = self.section is not None
            self.section, self.section_start = section, time.monotonic()
            if not self.live:
                self._write(self.line() + (f" (previous section {_clock(previous)})" if had_one else "") + "\n")
        if self.live:
            self._write("\r" + self.line() + "\x1b[K")  # \x1b[K clears what a longer line left behind
        if self._ticker is None and (self.live or self.progress_file is not None):
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def cell_done(self, cell=None, cell_index: int = 0, **_) -> None:
        pass  # the next cell_started (or finish) reports; kept so the hook pair reads symmetrically

    def _tick(self) -> None:
        while not self._stop.wait(self.tick):
            self.refresh()

    def refresh(self) -> None:
        """Show the current state: rewrite the live line, or (in a log) the bar's state when it changed
        and `log_every` seconds have passed since the last one."""
        self._read_progress_file()
        if self.live:
            self._write("\r" + self.line() + "\x1b[K")
        elif self.bar and self.bar != self._bar_logged and time.monotonic() - self._logged_at >= self.log_every:
            self._bar_logged, self._logged_at = self.bar, time.monotonic()
            self._write(f"[{_clock(time.monotonic() - self.start):>5s}]   {self.bar}\n")

    def finish(self, ok: bool = True) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        end = "\n" if self.live else ""
        word = "finished" if ok else "stopped at"
        self._write(end + f"[{_clock(time.monotonic() - self.start):>5s}] {word} code cell "
                    f"{self.cell}/{self.n_code}\n")


# The kernel's log lines that say nothing about the run (jupyter_client starts kernels on local TCP)
KERNEL_NOISE = ("running over TCP without encryption",)


def kernel_log(text: str) -> str:
    """The kernel's stderr without the noise lines (KERNEL_NOISE)."""
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in KERNEL_NOISE))


def _client_class(reporter):
    """nbclient's NotebookClient, telling `reporter` about every stream output as it arrives."""
    from nbclient import NotebookClient

    class ReportingClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            out = super().output(outs, msg, display_id, cell_index)
            if reporter is not None and msg.get("msg_type") == "stream":
                reporter.output(msg.get("content", {}).get("text", ""))
            return out

    return ReportingClient


def run_notebook(path=NOTEBOOK, out=None, smoke: bool = False, timeout: int | None = None,
                 progress=True) -> dict:
    """Execute the notebook top to bottom in a fresh kernel (nbclient), from the repository root,
    with text progress bars (they leave one final line each in the saved notebook). Writes it to
    `out` (default: in place) and returns {"seconds": total, "sections": {heading: seconds}}.

    progress: True reports the current cell and section on stderr while it runs (RunProgress);
    a stream reports there instead; False is silent."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in ("WM_SMOKE", "WM_PROGRESS", "WM_PROGRESS_FILE")}
    scratch = Path(tempfile.mkdtemp(prefix="wm-run-notebook-"))
    os.environ["WM_PROGRESS"] = "text"
    os.environ["WM_PROGRESS_FILE"] = str(scratch / "progress.txt")  # the kernel's bars write their state here
    os.environ["WM_SMOKE"] = "1" if smoke else "0"
    start = time.time()
    hooks, reporter = {}, None
    if progress:
        reporter = RunProgress(nb, stream=None if progress is True else progress,
                               progress_file=scratch / "progress.txt")
        hooks = {"on_cell_execute": reporter.cell_started, "on_cell_executed": reporter.cell_done}
    ok = False
    try:
        with open(scratch / "kernel.log", "w+") as klog:
            try:
                _client_class(reporter)(nb, timeout=timeout, kernel_name="python3",
                                        resources={"metadata": {"path": str(path.parent.resolve())}},
                                        **hooks).execute(stderr=klog)  # the kernel's stderr: kept, not shown
                ok = True
            finally:
                if reporter is not None:
                    reporter.finish(ok)
                if not ok:  # the kernel's own words may say why (a crash, a missing package)
                    klog.seek(0)
                    tail = kernel_log(klog.read())[-4000:]
                    if tail.strip():
                        print(f"kernel log (last lines):\n{tail}", file=sys.stderr)
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(scratch, ignore_errors=True)
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
    try:
        tags = {t for c in json.loads(Path(notebook).read_text()).get("cells", [])
                for t in c.get("metadata", {}).get("tags", [])}
    except (OSError, json.JSONDecodeError):
        tags = set()
    for tag in (*DELIVERABLE_TAGS, "conclusion"):
        lines.append(f"[{'x' if tag in tags else ' '}] cell tagged {tag!r} in {notebook}")
    return "\n".join(lines)
