"""`python -m wmhelpers check-notebook PATH`: the instructor's check of an executed notebook.

Passes when every code cell was executed, in order (execution counts 1..N), no cell has an
error output, every cell tagged as a deliverable figure holds an image, no output is a widget
with no static fallback, and the conclusion (the markdown cell tagged "conclusion") is written.
"""

from __future__ import annotations

import json
from pathlib import Path

DELIVERABLE_TAGS = ("figure-psnr", "figure-efficiency", "figure-filmstrip", "figure-attention-cost")
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
    conclusion = [c for c in cells
                  if c.get("cell_type") == "markdown" and "conclusion" in c.get("metadata", {}).get("tags", [])]
    if not conclusion:
        problems.append("no markdown cell tagged 'conclusion'")
    else:
        text = "".join(conclusion[0].get("source", ""))
        if len(text.split()) < MIN_CONCLUSION_WORDS or "TODO" in text:
            problems.append(f"the conclusion is empty or unfinished ({len(text.split())} words)")
    return problems


NOTEBOOK = "p04_transformer_backbone.ipynb"


def run_notebook(path=NOTEBOOK, out=None, smoke: bool = False, timeout: int | None = None) -> dict:
    """Execute the notebook top to bottom in a fresh kernel (nbclient), from the repository root,
    with text progress bars (they read in a static render). Writes it to `out` (default: in
    place) and returns {"seconds": total, "sections": {heading: seconds}}."""
    import os
    import time

    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in ("WM_SMOKE", "WM_PROGRESS")}
    os.environ["WM_PROGRESS"] = "text"
    os.environ["WM_SMOKE"] = "1" if smoke else "0"
    start = time.time()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent.resolve())}}).execute()
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nbformat.write(nb, Path(out) if out else path)
    return {"seconds": time.time() - start, "sections": section_times(nb)}


def section_times(nb) -> dict:
    """Seconds spent in the code cells under each '## ' heading (from nbclient's timing metadata)."""
    from datetime import datetime

    times, heading = {}, "setup"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    heading = line[3:].strip()
        elif cell.cell_type == "code":
            ex = cell.get("metadata", {}).get("execution", {})
            a, b = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
            if a and b:
                secs = (datetime.fromisoformat(b.replace("Z", "+00:00"))
                        - datetime.fromisoformat(a.replace("Z", "+00:00"))).total_seconds()
                times[heading] = times.get(heading, 0.0) + secs
    return times
