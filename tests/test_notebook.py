"""The notebook: the committed one passes the instructor's check; it runs top to bottom in smoke mode."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from wmhelpers.__main__ import main
from wmhelpers.notebook import DELIVERABLE_TAGS, NOTEBOOK, check_notebook, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def _stream_text(nb: dict) -> str:
    """All stream output of a notebook as one string (nbformat stores text as a str or a list)."""
    parts = [o.get("text", "") for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def _nb(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    return nb


def _good_cells():
    cells = []
    for i, tag in enumerate(DELIVERABLE_TAGS, start=1):
        c = nbformat.v4.new_code_cell("fig", execution_count=i)
        c.metadata["tags"] = [tag]
        png = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}
        c.outputs = [nbformat.v4.new_output("display_data", data=png)]
        cells.append(c)
    concl = nbformat.v4.new_markdown_cell(" ".join(["word"] * 80))
    concl.metadata["tags"] = ["conclusion"]
    return cells + [concl]


def test_check_accepts_a_complete_notebook(tmp_path):
    p = tmp_path / "ok.ipynb"
    nbformat.write(_nb(_good_cells()), p)
    assert check_notebook(p) == []
    assert main(["check-notebook", str(p)]) == 0


def test_check_names_each_problem(tmp_path, capsys):
    cells = _good_cells()
    cells[0].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    cells[1].execution_count = 7  # out of order
    cells[2].outputs = []  # deliverable figure missing
    cells[-1].source = "TODO"
    p = tmp_path / "bad.ipynb"
    nbformat.write(_nb(cells), p)
    problems = "\n".join(check_notebook(p))
    assert "ValueError: boom" in problems
    assert "execution counts" in problems
    assert DELIVERABLE_TAGS[2] in problems
    assert "conclusion" in problems
    assert main(["check-notebook", str(p)]) == 1
    assert "problem" in capsys.readouterr().out


def test_check_flags_unexecuted_cells(tmp_path):
    cells = _good_cells()
    cells[1].execution_count = None
    p = tmp_path / "unrun.ipynb"
    nbformat.write(_nb(cells), p)
    assert any("not executed" in x for x in check_notebook(p))


def test_committed_notebook_passes_the_check():
    assert check_notebook(ROOT / NOTEBOOK) == []


def test_committed_notebook_ran_the_full_config():
    nb = json.loads((ROOT / NOTEBOOK).read_text())
    text = _stream_text(nb)
    assert "smoke mode: False" in text


def test_notebook_runs_top_to_bottom_in_smoke_mode(tmp_path):
    out = tmp_path / "smoke.ipynb"
    info = run_notebook(ROOT / NOTEBOOK, out=out, smoke=True, timeout=600)
    assert check_notebook(out) == []
    nb = json.loads(out.read_text())
    text = _stream_text(nb)
    assert "smoke mode: True" in text
    assert info["sections"]  # timing per section was recorded
