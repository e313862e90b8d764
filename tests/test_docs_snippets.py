"""Every snippet of the README and docs/ runs as written, and prints what the page shows.

What is a snippet (extracted from README.md, docs/*.md and instances/README.md, generated
reports excepted):

- a fenced ``bash`` block: each command line (``\\`` continuations joined; comments are the
  shell's);
- a fenced ``console`` or ``text`` block with ``$ `` prompts: each command, and the lines up to
  the next prompt as its expected output;
- a fenced ``python`` block: run as a script, the blocks of one page in order in one namespace
  (a later block uses the names of an earlier one, as a reader in one session would). The
  expected output is written as comment lines right below the ``print(...)`` that prints it
  (``# train-13b 2 [...]``); a trailing comment on a code line is commentary, never output;
- a fenced ``yaml`` or ``json`` block whose first line is ``# <file name>``: written to that
  file, for the commands after it;
- an inline code span that is a whole command: ``placer <command> <argument>...`` or
  ``python -m <module> ...`` with no placeholder (no ``FILE``-style capitals, ``[``, ``|``,
  ``<``, ``...``).

Each page runs in its own working directory holding links to the repository's files, in page
order (a command may read the file an earlier one wrote). ``placer`` commands run in this
process through the CLI's own entry (``typer`` / click runner); other commands in ``bash``.

How printed output is compared (explicitly):

- lines are compared in order after stripping trailing blanks; blank lines at either end of
  the shown output are dropped;
- a shown line ``...`` (or a whole-line parenthesis, ``(tables: ...)``) stands for any
  number of lines; a shown line ending in `` ...`` matches any line that starts with the
  rest;
- **timing is matched loosely**: a number followed by a time unit (``0.06 s``, ``18 ms``)
  matches any number;
- **results of wall-clock-limited solves on the big instances are matched loosely**, for the
  snippets listed in ``LOOSE``: every number within the relative tolerance given there (a
  time limit on 2 shared cores does not give the same incumbent twice).

Snippets that are not run, or run only in the slow suite, are listed below with a reason
(``SKIP`` and ``SLOW``: matched by page and a piece of the command). The fast part stays
within about a minute on 2 cores.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if not p.name.startswith("benchmarks-report")),
    ROOT / "instances" / "README.md",
]

# (page or "*", piece of the snippet, reason): never run by this test
SKIP = [
    ("*", "pip install", "installs placer into a fresh venv: .ci/run does exactly that"),
    ("*", "python -m pytest", "the test suite itself"),
    (
        "*",
        "python -m bench",
        "a benchmark (minutes to hours on 2 cores, and its figures are the point): the "
        "integrator runs them on a quiet machine; tests/test_bench_output.py checks where "
        "they write",
    ),
    (
        "docs/calibrate.md",
        "./build/all_reduce_perf",
        "nvidia nccl-tests on a GPU cluster (GPUs, CUDA, MPI); tests/data/nccl holds such runs",
    ),
]
# (page or "*", piece of the snippet, reason): run by `python -m pytest -m slow` only
SLOW = [
    (
        "*",
        "colossus-v2.yaml --offer frontier-lab-campus",
        "two forced solves of colossus-v2 and a 7-point WAN sweep: about a minute on 2 cores",
    ),
    ("*", "placer solve instances/colossus.yaml", "a solve of colossus: 5-60 s"),
    (
        "docs/scheduler.md",
        "c.replan(time_limit=30)",
        "a full solve of colossus, then a replan: 10-60 s",
    ),
    ("docs/baselines.md", 'solver="kueue-bestfit"', "two peer solves of colossus: 10-30 s"),
]
# (page, piece of the snippet, relative tolerance of every number): results of
# wall-clock-limited solves on the big instances
LOOSE = [
    ("*", "colossus-v2.yaml --offer frontier-lab-campus", 0.05),
]

TIME = re.compile(r"\d[\d,]*(?:\.\d+)?(?=\s?(?:s|ms|us|µs)\b)")
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")
PLACEHOLDER = re.compile(r"(^|\s)[A-Z][A-Z_]{2,}(\s|$)|[\[\]|<>]|\.\.\.")


@dataclass
class Snippet:
    page: str  # relative to the repository
    line: int
    kind: str  # shell | console | python | file | inline
    code: str
    expected: list[str] | None = None
    name: str = ""  # file snippets: the file to write

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _rule(rules, s: Snippet):
    for page, piece, why in rules:
        if (page == "*" or page == s.page) and piece in s.code:
            return why
    return None


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, ln in lines:
        if not buf:
            start = n
        if ln.rstrip().endswith("\\"):
            buf += ln.rstrip()[:-1].rstrip() + " "
            continue
        buf += ln.strip() if buf else ln
        out.append((start, buf))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


def _python_expected(code: str) -> list[str]:
    """The comment lines right below each print(...): the output the page shows."""
    lines = code.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip().startswith("print("):
            j = i + 1
            while j < len(lines) and lines[j].startswith("#"):
                out.append(lines[j][1:].removeprefix(" "))
                j += 1
            i = j
        else:
            i += 1
    return out


def extract(path: Path) -> list[Snippet]:
    page = str(path.relative_to(ROOT))
    text = path.read_text()
    lines = text.splitlines()
    snippets: list[Snippet] = []
    prose: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        lang, start = m.group(1), i + 1
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = [(k + 1, lines[k]) for k in range(start, j)]
        i = j + 1
        if lang in ("bash", "sh", "shell"):
            for n, cmd in _join_continuations(body):
                if cmd.strip() and not cmd.lstrip().startswith("#"):
                    snippets.append(Snippet(page, n, "shell", cmd.strip()))
        elif lang in ("console", "text", "") and any(b.startswith("$ ") for _, b in body):
            k = 0
            while k < len(body):
                n, b = body[k]
                if not b.startswith("$ "):
                    k += 1
                    continue
                cmd_lines = [(n, b[2:])]
                while cmd_lines[-1][1].rstrip().endswith("\\") and k + 1 < len(body):
                    k += 1
                    cmd_lines.append(body[k])
                ((_, cmd),) = _join_continuations(cmd_lines)
                k += 1
                shown = []
                while k < len(body) and not body[k][1].startswith("$ "):
                    shown.append(body[k][1])
                    k += 1
                snippets.append(Snippet(page, n, "console", cmd.strip(), shown))
        elif lang == "python":
            code = "\n".join(b for _, b in body)
            snippets.append(Snippet(page, start + 1, "python", code, _python_expected(code)))
        elif lang in ("yaml", "json") and body and re.match(r"^# [\w.-]+$", body[0][1]):
            code = "\n".join(b for _, b in body)
            snippets.append(Snippet(page, start + 1, "file", code, name=body[0][1][2:]))
    # inline commands: code spans of the prose (a span may cross a line break)
    flat = "\n".join(f"\x00{n}\x00{t}" for n, t in prose)
    for m in re.finditer(r"`([^`]+)`", flat):
        span = m.group(1)
        n = int(re.findall(r"\x00(\d+)\x00", flat[: m.start()])[-1])
        cmd = re.sub(r"\s+", " ", re.sub(r"\x00\d+\x00", " ", span)).strip()
        words = cmd.split()
        # a command with an argument (a path, an option, a setting), not a command's name
        has_arg = any(re.search(r"[/.=-]", w) for w in words[2:])
        is_cmd = (words[0] == "placer" and has_arg) or words[:2] == ["python", "-m"]
        if is_cmd and not PLACEHOLDER.search(cmd):
            snippets.append(Snippet(page, n, "inline", cmd))
    return sorted(snippets, key=lambda s: s.line)


ALL = [s for p in PAGES for s in extract(p)]


# ------------------------------------------------------------------------------- matching
def _line_pattern(shown: str, tol: float | None) -> re.Pattern:
    prefix = shown.endswith(" ...")
    if prefix:
        shown = shown[: -len(" ...")]
    pat, last = "", 0
    numbers = NUMBER if tol is not None else TIME
    for m in numbers.finditer(shown):
        pat += re.escape(shown[last : m.start()]) + f"(?P<n{len(pat)}>[-+]?[\\d,.]+)"
        last = m.end()
    pat += re.escape(shown[last:])
    return re.compile(pat + (".*" if prefix else "") + r"\Z")


def _numbers_close(shown: str, got: str, tol: float) -> bool:
    a = [float(x.replace(",", "")) for x in NUMBER.findall(shown)]
    b = [float(x.replace(",", "")) for x in NUMBER.findall(got)]
    return len(b) >= len(a) and all(
        abs(x - y) <= tol * max(abs(x), abs(y), 1e-9) for x, y in zip(a, b)
    )


def _wild(line: str) -> bool:
    s = line.strip()
    return s == "..." or (s.startswith("(") and s.endswith(")"))


def matches(shown: list[str], got: list[str], tol: float | None = None) -> bool:
    """Whether `got` (printed lines) is what the page shows (rules in the module docstring)."""
    shown = [s.rstrip() for s in shown]
    got = [g.rstrip() for g in got]
    while shown and not shown[0]:
        shown.pop(0)
    while shown and not shown[-1]:
        shown.pop()
    while got and not got[-1]:
        got.pop()

    def ok(s: str, g: str) -> bool:
        m = _line_pattern(s, tol).match(g)
        if m is None:
            return False
        return tol is None or _numbers_close(s.removesuffix(" ..."), g, tol)

    def rec(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(got)
        if _wild(shown[i]):
            return any(rec(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and ok(shown[i], got[j]) and rec(i + 1, j + 1)

    return rec(0, 0)


# ------------------------------------------------------------------------------- running
@dataclass
class Page:
    path: str
    dir: Path
    namespace: dict = field(default_factory=dict)
    done: dict[int, tuple[int, str]] = field(default_factory=dict)


def _workdir(tmp: Path) -> Path:
    for p in ROOT.iterdir():
        if p.name not in (".git", ".venv") and not p.name.startswith("."):
            (tmp / p.name).symlink_to(p)
    return tmp


def _env() -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "COLUMNS": "150",
    }


def run(s: Snippet, page: Page) -> tuple[int, str]:
    """Run one snippet in its page's directory: (exit code, printed text)."""
    from placer.cli import app

    with contextlib.chdir(page.dir):
        if s.kind == "file":
            Path(s.name).write_text(s.code + "\n")
            return 0, ""
        if s.kind == "python":
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(compile(s.code, s.id, "exec"), page.namespace)  # noqa: S102
            return 0, buf.getvalue()
        cmd = s.code
        if cmd.startswith("placer ") and not re.search(r"[|;&<>$]", cmd):
            res = CliRunner().invoke(app, shlex.split(cmd, comments=True)[1:])
            if res.exception is not None and not isinstance(res.exception, SystemExit):
                raise res.exception
            return res.exit_code, res.output
        out = subprocess.run(
            ["bash", "-c", cmd], capture_output=True, text=True, env=_env(), timeout=600
        )
        return out.returncode, out.stdout + out.stderr


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    made: dict[str, Page] = {}

    def get(page: str) -> Page:
        if page not in made:
            made[page] = Page(page, _workdir(tmp_path_factory.mktemp(Path(page).stem)))
        return made[page]

    yield get
    for p in made.values():
        p.namespace.clear()


_SAME: dict[str, tuple[int, str]] = {}  # slow commands quoted on several pages run once


def _result(s: Snippet, pages) -> tuple[int, str]:
    """Run `s` after every earlier fast snippet of its page (once each)."""
    page = pages(s.page)
    for t in ALL:
        if t.page != s.page or t.line > s.line:
            continue
        if t.line not in page.done and (t is s or not (_rule(SKIP, t) or _rule(SLOW, t))):
            if t.kind in ("inline", "console") and _rule(SLOW, t):
                # the same command reads the same repository files wherever it is quoted
                if t.code not in _SAME:
                    _SAME[t.code] = run(t, page)
                page.done[t.line] = _SAME[t.code]
            else:
                page.done[t.line] = run(t, page)
    return page.done[s.line]


def _params():
    for s in ALL:
        marks = []
        why = _rule(SKIP, s)
        if why:
            marks.append(pytest.mark.skip(reason=why))
        elif _rule(SLOW, s):
            marks.append(pytest.mark.slow)
        yield pytest.param(s, id=s.id, marks=marks)


@pytest.mark.parametrize("snippet", list(_params()))
def test_snippet_runs_as_written_and_prints_what_the_page_shows(snippet, pages):
    code, printed = _result(snippet, pages)
    assert code == 0, f"{snippet.id}: `{snippet.code[:200]}` exited {code}:\n{printed[-3000:]}"
    if snippet.expected and any(x.strip() for x in snippet.expected):
        tol = _rule(LOOSE, snippet)
        assert matches(snippet.expected, printed.splitlines(), tol), (
            f"{snippet.id}: printed\n{printed}\n--- the page shows\n" + "\n".join(snippet.expected)
        )


# ------------------------------------------------------------------------------- the rules
def test_the_extractor_finds_the_snippets_the_pages_hold():
    kinds = {(s.page, s.kind) for s in ALL}
    for want in [
        ("README.md", "console"),
        ("README.md", "python"),
        ("README.md", "shell"),
        ("docs/scheduler.md", "python"),
        ("docs/scheduler.md", "file"),
        ("docs/formats.md", "console"),
        ("docs/decide.md", "inline"),
    ]:
        assert want in kinds, want
    # every skip or slow rule still names a snippet (no stale entry)
    for rules in (SKIP, SLOW, LOOSE):
        for page, piece, _ in rules:
            assert any((page in ("*", s.page)) and piece in s.code for s in ALL), (page, piece)


def test_matching_rules():
    assert matches(
        ["optimal by cpsat in 0.06 s: objective 8,623 vu"],
        ["optimal by cpsat in 1.5 s: objective 8,623 vu"],
    )
    assert not matches(["objective 8,623 vu"], ["objective 8,624 vu"])
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"]) and matches(
        ["a", "...", "z"], ["a", "z"]
    )
    assert matches(["   (tables: anything)", "z"], ["t1", "t2", "z"])
    assert matches(["needs 4 GPUs; the most free ..."], ["needs 4 GPUs; the most free is 0 now"])
    assert not matches(["a"], ["a", "b"])
    assert matches(["worth +6.5 M vu"], ["worth +6.7 M vu"], 0.05)
    assert not matches(["worth +6.5 M vu"], ["worth +7.5 M vu"], 0.05)


# ------------------------------------------------------------------------------- figures
def test_the_instances_table_lists_every_bundled_instance_with_its_counts():
    import placer

    text = (ROOT / "instances" / "README.md").read_text()
    rows = {}
    for line in text.split("\n\n")[1].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    assert set(rows) == {p.name for p in (ROOT / "instances").glob("*.yaml")}
    for name, (_, _, sites, gpus, jobs, offers) in rows.items():
        inst = placer.load_instance(ROOT / "instances" / name)
        ix = inst.index
        assert int(sites) == ix.n_sites, name
        assert gpus == f"{ix.n_gpus:,} ({int(ix.available.sum()):,})", name
        running = sum(1 for j in inst.jobs if j.current)
        pinned = sum(1 for j in inst.jobs if j.current and j.pinned)
        want = str(len(inst.jobs))
        if running:
            want += f" ({running} running" + (f", {pinned} pinned)" if pinned else ")")
        assert jobs == want, name
        assert int(offers.split()[0]) == len(inst.offers), name
        assert not inst.warnings, name


def test_the_submit_figures_quoted_are_those_of_bench_results_cluster_json():
    import json

    s = json.loads((ROOT / "bench" / "results" / "cluster.json").read_text())["summary"]
    median, speedup = f"{s['submit_median_ms']:.1f} ms", f"{s['speedup_of_medians']:.0f}x"
    for page, pattern in [
        ("README.md", r"`Cluster\.submit` on a loaded colossus[^\n]*"),
        ("docs/scheduler.md", r"Measured: median [^\n]*\n[^\n]*"),
        ("docs/benchmarks.md", r"\| `submit`, median over[^\n]*\n[^\n]*\n[^\n]*\n[^\n]*"),
    ]:
        m = re.search(pattern, (ROOT / page).read_text())
        assert m, page
        quoted = m.group(0)
        assert median in quoted and speedup in quoted, (page, median, speedup, quoted)
    # and the rest of the run's table
    for k in (
        "submit_p95_ms",
        "submit_max_ms",
        "submit_median_placed_ms",
        "submit_median_not_placed_ms",
        "compared_submit_median_ms",
    ):
        assert re.search(rf"\b{s[k]:.1f}\b", quoted), (k, quoted)
    assert f"{s['full_solve_median_s']:.2f} s" in quoted
