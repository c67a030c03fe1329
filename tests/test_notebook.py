"""The notebook: the committed one passes the instructor's check; it runs top to bottom in smoke mode."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat

from wmhelpers.__main__ import main
from wmhelpers.config import ExperimentConfig
from wmhelpers.data import cache_paths
from wmhelpers.notebook_runner import DELIVERABLE_TAGS, NOTEBOOK, check_notebook, run_notebook

ROOT = Path(__file__).resolve().parents[1]


def _run_outside_the_repo(source, tmp_path, monkeypatch, **kwargs) -> tuple[Path, dict]:
    """Run a copy of the notebook `source` in tmp_path; returns (executed notebook, run info).

    The kernel runs in the notebook's folder and every path the notebook writes (cfg.data_dir,
    cfg.checkpoint_dir) is relative to it, so all its files land in tmp_path, never in the
    repository. It finds wmhelpers through PYTHONPATH (the repository is not its cwd) and writes
    no bytecode into the repository either."""
    copy = tmp_path / Path(source).name
    shutil.copy(source, copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    out = tmp_path / "executed.ipynb"
    return out, run_notebook(copy, out=out, **kwargs)


def _stamp(paths) -> dict:
    """Whether each path exists, and when it was last changed: to see that a run left it alone."""
    return {str(p): (p.exists(), p.stat().st_mtime_ns if p.exists() else None) for p in paths}


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


def test_check_flags_wide_printed_lines_and_a_conclusion_that_is_not_one_short_paragraph(tmp_path):
    cells = _good_cells()
    cells[0].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="x" * 111 + "\n" + "y" * 110))
    p = tmp_path / "wide.ipynb"
    nbformat.write(_nb(cells), p)
    assert check_notebook(p) == ["code cell 1 prints 1 line(s) over 110 characters"]
    for text in (" ".join(["word"] * 221), " ".join(["word"] * 40) + "\n\n" + " ".join(["word"] * 40)):
        cells = _good_cells()
        cells[-1].source = text
        nbformat.write(_nb(cells), p)
        assert any("conclusion" in x for x in check_notebook(p))


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
    assert "CPU default budget" in text and "smoke budget" not in text


def test_a_notebook_run_by_the_tests_writes_only_to_its_temporary_folder(tmp_path, monkeypatch):
    """The mechanism the smoke run relies on, in seconds: the kernel imports this checkout's
    wmhelpers, and a file written under cfg.checkpoint_dir lands beside the copied notebook."""
    probe = nbformat.v4.new_code_cell(
        "import os, wmhelpers as wm\n"
        "cfg = wm.ExperimentConfig.smoke()\n"
        "os.makedirs(cfg.checkpoint_dir, exist_ok=True)\n"
        "open(os.path.join(cfg.checkpoint_dir, 'probe.txt'), 'w').write(wm.__file__)")
    src = tmp_path / "src" / "probe.ipynb"
    src.parent.mkdir()
    nbformat.write(_nb([probe]), src)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    before = _stamp([ROOT / "checkpoints" / "smoke" / "probe.txt"])
    _run_outside_the_repo(src, run_dir, monkeypatch, timeout=120, progress=False)
    written = run_dir / ExperimentConfig.smoke().checkpoint_dir / "probe.txt"
    assert Path(written.read_text()) == ROOT / "wmhelpers" / "__init__.py"
    assert _stamp([ROOT / "checkpoints" / "smoke" / "probe.txt"]) == before


def test_notebook_runs_top_to_bottom_in_smoke_mode(tmp_path, monkeypatch):
    smoke = ExperimentConfig.smoke()
    in_repo = [ROOT / smoke.checkpoint_dir / name for name in ("p04_transformer.pt", "p03_rssm.pt",
                                                               "p04_results.json")]
    in_repo += [ROOT / p for p in cache_paths(smoke)]
    before = _stamp(in_repo)
    out, info = _run_outside_the_repo(ROOT / NOTEBOOK, tmp_path, monkeypatch, smoke=True, timeout=600)
    assert check_notebook(out) == []
    nb = json.loads(out.read_text())
    text = _stream_text(nb)
    assert "smoke budget (WM_SMOKE=1)" in text
    assert info["sections"]  # timing per section was recorded
    # everything it wrote is in tmp_path; the repository's copies were not touched
    assert (tmp_path / smoke.checkpoint_dir / "p04_results.json").exists()
    assert all((tmp_path / p).exists() for p in cache_paths(smoke))
    assert _stamp(in_repo) == before


def test_run_notebook_keeps_the_users_wm_smoke(tmp_path, monkeypatch):
    nb = _nb([nbformat.v4.new_code_cell("import os; print(os.environ['WM_SMOKE'])")])
    nbformat.write(nb, tmp_path / "env.ipynb")
    for env, flag, seen in (("1", False, "1"), ("0", True, "1"), ("0", False, "0")):
        monkeypatch.setenv("WM_SMOKE", env)
        run_notebook(tmp_path / "env.ipynb", out=tmp_path / "out.ipynb", smoke=flag, progress=False)
        assert _stream_text(json.loads((tmp_path / "out.ipynb").read_text())).strip() == seen
