"""run-notebook's progress report, the saved progress bars, and check-notebook's number rule,
each on tiny throwaway notebooks (never the real one: that takes minutes)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import nbformat
import pytest

from wmhelpers.notebook_runner import (
    RunProgress,
    check_notebook,
    kernel_log,
    live_states,
    run_notebook,
    unsupported_numbers,
)
from wmhelpers.progress import LIVE_ENV, LIVE_MARK, FinalLineBar, progress_bar


# ---- progress bars: one final line in text mode ----------------------------------------------
def test_text_mode_bar_prints_only_one_final_line_on_stdout(monkeypatch, capsys):
    monkeypatch.setenv("WM_PROGRESS", "text")
    bar = progress_bar(range(500), desc="training demo")
    assert isinstance(bar, FinalLineBar)
    for i in bar:
        if i == 250:
            assert capsys.readouterr() == ("", "")  # silent while running: nothing to stack up
        bar.set_postfix(loss=f"{i:.1f}", refresh=False)
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("\n") == 1 and "\r" not in out
    assert out.startswith("training demo: 100%") and "500/500" in out and "loss=499.0" in out


def test_text_mode_manual_bar_and_disabled_bar(monkeypatch, capsys):
    monkeypatch.setenv("WM_PROGRESS", "text")
    bar = progress_bar(total=40, desc="evaluating")
    bar.update(15)
    bar.update(25)
    bar.close()
    bar.close()  # a second close must not print a second line
    progress_bar(total=3, desc="hidden", disable=True).close()
    out, _ = capsys.readouterr()
    assert out.splitlines() == [line for line in out.splitlines() if line.startswith("evaluating")]
    assert len(out.splitlines()) == 1 and "40/40" in out


def test_text_mode_bar_shares_its_live_state_as_marked_lines_only_when_asked(monkeypatch, capsys):
    monkeypatch.setenv("WM_PROGRESS", "text")
    monkeypatch.delenv(LIVE_ENV, raising=False)
    bar = progress_bar(total=1750, desc="training transformer")
    bar.update(790)
    bar.share(force=True)
    assert capsys.readouterr() == ("", "")  # not asked: silent
    monkeypatch.setenv(LIVE_ENV, "1")
    bar.share(force=True)  # the bar shares at most twice a second; force it for the test
    out = capsys.readouterr().out
    assert out.startswith(LIVE_MARK + "training transformer:  45%") and "790/1750" in out and out.count("\n") == 1
    bar.close()
    final = capsys.readouterr().out
    assert final.count("\n") == 1 and LIVE_MARK not in final


# ---- run-notebook progress ----------------------------------------------------------------------
def _tiny_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## 1. Data\nsome text"),
        nbformat.v4.new_code_cell("y = x + 1"),
        nbformat.v4.new_code_cell("print(y)"),
        nbformat.v4.new_markdown_cell("## 2. Model"),
        nbformat.v4.new_code_cell("z = y * 2"),
    ]
    return nb


def test_progress_log_has_one_line_per_section():
    nb = _tiny_notebook()
    out = io.StringIO()
    p = RunProgress(nb, stream=out, live=False)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            p.cell_started(cell=cell, cell_index=i)
    p.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # setup, 1. Data, 2. Model, and the total
    assert "code cell 1/4 · setup" in lines[0]
    assert "code cell 2/4 · 1. Data" in lines[1] and "previous section" in lines[1]
    assert "code cell 4/4 · 2. Model" in lines[2]
    assert "finished code cell 4/4" in lines[3]


def test_progress_on_a_terminal_rewrites_one_line():
    nb = _tiny_notebook()
    out = io.StringIO()
    p = RunProgress(nb, stream=out, live=True)
    p.cell_started(cell=nb.cells[1], cell_index=1)
    p.cell_started(cell=nb.cells[3], cell_index=3)
    p.finish()
    text = out.getvalue()
    assert text.count("\n") == 2  # the live line ends once, then the total
    assert "\r" in text and "code cell 2/4 · 1. Data" in text and "in this section" in text


def test_live_states_take_the_marked_lines_out_of_a_stream_text():
    text = (f"loss 0.25\n{LIVE_MARK}train: 10%|#  | 1/10 [00:01<00:09, 1.0it/s]\n"
            f"half a line {LIVE_MARK}train: 20%|## | 2/10 [00:02<00:08, 1.0it/s]\nend\n")
    kept, states = live_states(text)
    assert kept == "loss 0.25\nhalf a line end\n"
    assert states == ["train: 10%|#  | 1/10 [00:01<00:09, 1.0it/s]", "train: 20%|## | 2/10 [00:02<00:08, 1.0it/s]"]
    assert live_states("plain\n") == ("plain\n", [])


def test_a_running_cell_shows_its_progress_bar_on_the_terminal_and_in_a_log():
    nb = _tiny_notebook()
    term = io.StringIO()
    p = RunProgress(nb, stream=term, live=True)
    p.cell_started(cell=nb.cells[3], cell_index=3)
    p.bar("training transformer:  45%|####5     | 790/1750 [02:31<03:03, 5.2it/s]")
    assert "1. Data" in term.getvalue().splitlines()[-1] and "790/1750 [02:31<03:03" in term.getvalue()
    p.cell_started(cell=nb.cells[4], cell_index=4)
    assert p.state is None  # a bar belongs to the cell that drew it
    assert term.getvalue().endswith("· 1. Data (0:00 in this section)\x1b[K")
    p.finish()

    log = io.StringIO()
    p = RunProgress(nb, stream=log, live=False, log_every=0)
    p.cell_started(cell=nb.cells[3], cell_index=3)
    p.bar("training transformer:  12%|#2        | 210/1750 [00:30<03:40, 7.0it/s]")
    p.bar("training transformer:  12%|#2        | 210/1750 [00:30<03:40, 7.0it/s]")  # unchanged: not logged twice
    p.finish()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "210/1750" in lines[1] and "\r" not in log.getvalue()

    log = io.StringIO()
    p = RunProgress(nb, stream=log, live=False, log_every=3600)  # in a log, at most one state per log_every
    p.cell_started(cell=nb.cells[3], cell_index=3)
    p.bar("training transformer:  12%|#2        | 210/1750 [00:30<03:40, 7.0it/s]")
    p.finish()
    assert len(log.getvalue().splitlines()) == 2


def test_the_kernels_transport_warning_is_dropped_from_its_log():
    text = ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication ...\n"
            "Segmentation fault\n")
    assert kernel_log(text) == "Segmentation fault\n"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_run_notebook_shows_a_cells_progress_bar_and_not_the_kernels_log(tmp_path, capfd):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("## 1. Train"), nbformat.v4.new_code_cell(
        f"import sys, time\nsys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from wmhelpers.progress import progress_bar\n"
        "for i in progress_bar(range(30), desc='training demo'):\n    time.sleep(0.1)")]
    src = tmp_path / "bar.ipynb"
    nbformat.write(nb, src)
    term = _Terminal()
    run_notebook(src, out=tmp_path / "ran.ipynb", timeout=120, progress=term)
    assert re.search(r"training demo: +\d+%\|.*\| ([0-9]|[12][0-9])/30 \[", term.getvalue())  # live, mid-cell
    saved = nbformat.read(tmp_path / "ran.ipynb", as_version=4).cells[1].outputs
    assert len(saved) == 1 and saved[0].text.count("\n") == 1 and "30/30" in saved[0].text  # one final line
    assert "encryption" not in capfd.readouterr().err


def test_run_notebook_reports_cells_and_sections_while_it_runs(tmp_path):
    src = tmp_path / "tiny.ipynb"
    nbformat.write(_tiny_notebook(), src)
    report = io.StringIO()
    info = run_notebook(src, out=tmp_path / "ran.ipynb", timeout=120, progress=report)
    text = report.getvalue()
    assert "code cell 1/4 · setup" in text and "1. Data" in text and "2. Model" in text
    assert "finished code cell 4/4" in text
    ran = nbformat.read(tmp_path / "ran.ipynb", as_version=4)
    assert ran.cells[4].outputs[0].text == "2\n"  # it really ran
    assert set(info["sections"]) == {"setup", "1. Data", "2. Model"}


# ---- check-notebook: numbers in the prose must be in the outputs --------------------------------
def _with_prose(markdown: str, printed: str, tags=()):
    nb = nbformat.v4.new_notebook()
    md = nbformat.v4.new_markdown_cell(markdown)
    md.metadata["tags"] = list(tags)
    code = nbformat.v4.new_code_cell("print(...)", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [code, md]
    return nb


@pytest.mark.parametrize("prose", [
    "The Transformer reaches 26.9 dB at h = 1.",       # printed 26.93 rounds to it
    "A step costs 375 ms, i.e. 0.86× the RSSM's.",     # both printed
    "It took 1,149 ms.",                                # thousands separator
    "Collection takes ~30 s; a 64x64 frame.",           # an estimate and a size, not results
])
def test_number_rule_accepts_numbers_the_outputs_show(prose):
    nb = _with_prose(prose, "PSNR 26.93 dB; step 375.2 ms; ratio 0.864; GRU 1149.0 ms\n")
    assert unsupported_numbers(nb) == []


@pytest.mark.parametrize("prose, flagged", [
    ("The Transformer reaches 27.4 dB at h = 1.", "27.4 dB"),
    ("Sampling adds 0.92 dB.", "0.92 dB"),
    ("It is 1.8x faster.", "1.8x"),
    ("Training took 12 s.", "12 s"),
])
def test_number_rule_flags_numbers_no_output_shows(prose, flagged):
    nb = _with_prose(prose, "PSNR 26.93 dB; step 375.2 ms; ratio 0.864\n")
    problems = unsupported_numbers(nb)
    assert len(problems) == 1 and flagged in problems[0]


def test_number_rule_skips_cells_tagged_as_quoting_others(tmp_path):
    nb = _with_prose("STORM reports 1.8x the speed.", "nothing here\n", tags=["cited-numbers"])
    assert unsupported_numbers(nb) == []
    nb = _with_prose("STORM reports 1.8x the speed.", "nothing here\n")
    p = tmp_path / "nb.ipynb"
    nbformat.write(nb, p)
    assert any("1.8x" in problem for problem in check_notebook(p))


def test_a_conclusion_written_by_the_run_counts_only_with_its_output():
    from wmhelpers.notebook_runner import conclusion_text

    cell = nbformat.v4.new_code_cell("wm.verdict.show_conclusion(facts)", execution_count=1)
    cell.metadata["tags"] = ["conclusion"]
    assert conclusion_text(cell) == ""  # not run: no words
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "The RSSM leads.",
                                                                  "text/plain": "<Markdown>"})]
    assert conclusion_text(cell) == "The RSSM leads."
