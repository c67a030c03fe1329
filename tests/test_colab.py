"""The Colab path, tested without Colab.

The notebook's first code cell clones REPO_URL (or $WM_REPO_URL), steps into the clone and installs
what Colab lacks, but only when `google.colab` is imported. Here a stand-in `google.colab` is
imported at kernel start (an IPython startup file, as in Colab), REPO_URL points at a local
repository made from this working tree, and pip runs with --no-index (the packages are already
installed, so no network is used). Everything the tests write lies under pytest's tmp_path.
"""

from __future__ import annotations

import ast
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from wmhelpers.notebook_runner import NOTEBOOK

ROOT = Path(__file__).resolve().parents[1]
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")

# Directories whose churn says nothing about the notebook (caches of tools, git's own files).
_UNWATCHED = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}

_PROBE = """\
import json, os, sys
import wmhelpers
colab = sys.modules.get("google.colab")
print("PROBE " + json.dumps({"cwd": os.getcwd(), "wmhelpers": wmhelpers.__file__,
                             "colab": getattr(colab, "__file__", None)}))
"""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _notebook() -> dict:
    return json.loads((ROOT / NOTEBOOK).read_text(encoding="utf-8"))


def _setup_index(nb) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")


def _setup_source(nb=None) -> str:
    nb = nb or _notebook()
    src = nb["cells"][_setup_index(nb)]["source"]
    return "".join(src) if isinstance(src, list) else src


def _assigned(source: str, name: str) -> ast.expr:
    """The expression assigned to `name` at the top level of the cell."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    raise AssertionError(f"the setup cell assigns no {name}")


def _git(*args, cwd) -> str:
    return subprocess.run([GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _make_origin(dest: Path, files: dict[str, bytes] | None = None) -> str:
    """A git repository at dest holding `files`, or else this working tree as it is now (tracked and
    untracked files, ignored ones left out, so uncommitted work is tested too). Returns its commit."""
    dest.mkdir(parents=True)
    if files is None:
        listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
        for rel in filter(None, listed):
            if (ROOT / rel).is_file():  # tracked files deleted in the working tree are skipped
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, dest / rel)
    else:
        for rel, data in files.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
    _git("init", "-q", cwd=dest)
    _git("add", "-A", cwd=dest)
    _git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false",
         "commit", "-q", "-m", "snapshot", cwd=dest)
    return _git("rev-parse", "HEAD", cwd=dest)


def _stand_in_colab(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in google.colab package (no google/__init__.py: the real `google` is a namespace package
    too) and an IPython profile whose startup file imports it, as Colab's kernel does at start."""
    stub = tmp_path / "stub"
    (stub / "google" / "colab").mkdir(parents=True)
    (stub / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s module (tests only)."""\n')
    ipython_dir = tmp_path / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    return stub, ipython_dir


def _tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under root, tool caches and .git left out."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _UNWATCHED]
        for name in filenames:
            p = Path(dirpath, name)
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            state[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return state


def _changed(before: dict, after: dict) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def _written_in_clone(clone: Path, origin: Path) -> set[str]:
    """Files of the clone that the origin does not hold byte for byte: what the run wrote there."""
    return {rel for rel in _tree_state(clone)
            if not (origin / rel).is_file() or not filecmp.cmp(clone / rel, origin / rel, shallow=False)}


def _text(cell) -> str:
    parts = [o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream"]
    return "".join("".join(p) if isinstance(p, list) else p for p in parts)


def _run_setup_cell(cwd: Path, stub: Path, colab: bool = True, **env) -> subprocess.CompletedProcess:
    """The setup cell as plain Python in a fresh interpreter (it has no IPython syntax)."""
    code = ("import google.colab\n" if colab else "") + _setup_source()
    full_env = {**os.environ, "PYTHONPATH": str(stub), "PIP_NO_INDEX": "1", **env}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=300)


# --------------------------------------------------------------------------------------------
# one place for the repository's address
# --------------------------------------------------------------------------------------------
_BADGE = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/[\w.-]+/([\w./-]+\.ipynb)")


def test_badges_and_repo_url_name_the_same_repository():
    """The README's badge, the notebook's badge (cell 0) and the setup cell's REPO_URL must agree."""
    nb = _notebook()
    value = _assigned(_setup_source(nb), "REPO_URL")
    urls = [n.value for n in ast.walk(value) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert "WM_REPO_URL" in urls, "REPO_URL should read the environment variable WM_REPO_URL"
    github = [u for u in urls if u.startswith("https://github.com/")]
    assert len(github) == 1, f"REPO_URL should default to one GitHub URL, found {urls}"
    repo = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", github[0]).group(1)

    readme_badges = _BADGE.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    cell0 = nb["cells"][0]
    notebook_badges = _BADGE.findall("".join(cell0["source"]))
    assert readme_badges, "the README has no Colab badge"
    assert notebook_badges, "the notebook's first cell has no Colab badge"
    for where, badges in (("README", readme_badges), ("notebook cell 0", notebook_badges)):
        for badge_repo, path in badges:
            assert badge_repo == repo, f"{where} badge opens {badge_repo}, REPO_URL is {repo}"
            assert path == NOTEBOOK, f"{where} badge opens {path}, not {NOTEBOOK}"


def test_colab_installs_lines_of_the_requirements():
    """What the setup cell installs in Colab is taken, bound and all, from requirements.txt."""
    needs = ast.literal_eval(_assigned(_setup_source(), "COLAB_NEEDS"))
    lines = {ln.strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()}
    assert needs and set(needs) <= lines, f"not in requirements.txt: {set(needs) - lines}"


# --------------------------------------------------------------------------------------------
# the setup cell on its own: locally, after a failed clone, after a failed install, re-run
# --------------------------------------------------------------------------------------------
def test_setup_cell_does_nothing_outside_colab(tmp_path):
    stub, _ = _stand_in_colab(tmp_path)
    work = tmp_path / "content"
    work.mkdir()
    r = _run_setup_cell(work, stub, colab=False, WM_REPO_URL=(tmp_path / "nowhere").as_uri())
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert list(work.iterdir()) == []


@needs_git
def test_failed_clone_says_what_to_do_in_one_line(tmp_path):
    stub, _ = _stand_in_colab(tmp_path)
    work = tmp_path / "content"
    work.mkdir()
    r = _run_setup_cell(work, stub, WM_REPO_URL=(tmp_path / "no-such-repo").as_uri())
    assert r.returncode == 0 and r.stderr == "", r.stderr  # no traceback
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    assert lines[0].startswith("Setup failed (fatal:"), lines[0]
    for hint in ("network", "REPO_URL", "WM_REPO_URL", "re-run this cell"):
        assert hint in lines[0]
    assert list(work.iterdir()) == []  # no half clone, no chdir


@needs_git
def test_failed_install_says_what_to_do_and_a_rerun_finishes_the_setup(tmp_path):
    stub, _ = _stand_in_colab(tmp_path)
    origin = tmp_path / "origin"
    _make_origin(origin, {"wmhelpers/__init__.py": b"", "requirements.txt": b"gymnasium>=1.0\n"})
    work = tmp_path / "content"
    work.mkdir()
    conflict = tmp_path / "conflict.txt"
    conflict.write_text("gymnasium<0.1\n")  # pip cannot satisfy this: the install fails at once, offline
    url = origin.as_uri()

    r = _run_setup_cell(work, stub, WM_REPO_URL=url, PIP_CONSTRAINT=str(conflict))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Setup failed (ERROR"), r.stdout
    assert "network" in lines[0] and "re-run this cell" in lines[0]
    assert (work / "p04" / "wmhelpers").is_dir()

    for _ in range(2):  # re-run after fixing the cause, then once more: the clone is reused, not nested
        r = _run_setup_cell(work, stub, WM_REPO_URL=url)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert r.stdout.splitlines() == [f"Ready: working in {work / 'p04'}, a clone of {url}"]
        assert [p.name for p in work.iterdir()] == ["p04"]
        assert not (work / "p04" / "p04").exists()


# --------------------------------------------------------------------------------------------
# the whole Colab path: setup cell, then the notebook in smoke mode, in one kernel
# --------------------------------------------------------------------------------------------
@needs_git
def test_colab_path_clones_installs_and_runs_the_notebook(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    origin = tmp_path / "origin"
    head = _make_origin(origin)
    url = origin.as_uri()  # file:// so that --depth 1 applies as it does for GitHub
    stub, ipython_dir = _stand_in_colab(tmp_path)
    work = tmp_path / "content"  # Colab's /content
    work.mkdir()
    clone = work / "p04"
    for key, value in {
        "WM_REPO_URL": url, "WM_SMOKE": "1", "WM_PROGRESS": "text",
        "PYTHONPATH": str(stub),  # only the stand-in: wmhelpers must come from the clone
        "IPYTHONDIR": str(ipython_dir), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "PIP_NO_INDEX": "1",  # the packages are installed already; never reach for the network
    }.items():
        monkeypatch.setenv(key, value)

    nb = nbformat.read(ROOT / NOTEBOOK, as_version=4)
    setup = _setup_index(nb)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(nb.cells[setup].source))  # re-running the setup is harmless
    nb.cells.append(nbformat.v4.new_code_cell(_PROBE))
    before = _tree_state(ROOT)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    after = _tree_state(ROOT)

    ready = f"Ready: working in {clone}, a clone of {url}\n"
    assert _text(nb.cells[setup]) == ready  # cloned, stepped in, installed
    assert _text(nb.cells[n_cells]) == ready  # the re-run: same clone, not a clone inside the clone
    probe = json.loads(_text(nb.cells[-1]).split("PROBE ", 1)[1])
    assert Path(probe["cwd"]).resolve() == clone.resolve()
    assert Path(probe["wmhelpers"]).resolve().is_relative_to(clone.resolve()), probe["wmhelpers"]
    assert Path(probe["colab"]).resolve().is_relative_to(stub.resolve()), probe["colab"]
    assert _git("rev-parse", "HEAD", cwd=clone) == head
    assert _git("remote", "get-url", "origin", cwd=clone) == url

    # the rest of the notebook ran, every cell in order (nbclient stops at an error), in smoke mode, in the clone
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert "smoke budget (WM_SMOKE=1)" in "".join(_text(c) for c in code)

    # What the run wrote landed in the clone, and nowhere else: not beside it (a missed chdir) and not
    # in this repository (wmhelpers or a path taken from here). Other files of the repository may
    # change meanwhile (people and long runs work in it); the run's own files must not.
    written = _written_in_clone(clone, origin)
    assert "checkpoints/smoke/p04_results.json" in written, sorted(written)
    assert any(rel.startswith("data/") and rel.endswith(".npz") for rel in written), sorted(written)
    assert [p.name for p in work.iterdir()] == ["p04"]
    leaked = sorted(written & _changed(before, after))
    assert leaked == [], f"the notebook run wrote these in {ROOT} too"
