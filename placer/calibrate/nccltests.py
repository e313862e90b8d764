"""Read nvidia/nccl-tests output: the text of every version, and the JSON of ``-J``.

What a run gives placer: its collective, its ranks (rank, group, hostname: the ``Rank``
lines) and its (bytes, time) samples, out-of-place and in-place. The parser is driven by
the table's own header, never by a fixed column count, so every column variant reads the
same way:

- text of old and new builds: ``size count type [redop] [root] time algbw busbw #wrong|error``
  twice (out-of-place, in-place); ``-C`` names the time ``cputime``, ``-I 1`` adds
  ``i_min i_max i_p99 i_cv%`` to each half, ``-S`` ends each row with a ``timestamp`` (two
  tokens), copy-overlap builds add ``copybw``; a column printed blank (``redop`` of an old
  all-to-all) is placed by the header's column positions;
- launcher prefixes (Open MPI ``--tag-output`` ``[1,0]<stdout>:``, ``-prepend-rank``,
  ``srun --label``, ``kubectl logs --timestamps``, SkyPilot's ``(head, rank=0, ...)``) are
  stripped, and NCCL's own ``host:pid:tid [d] NCCL INFO`` lines are skipped, also when one
  cuts a row in two (NCCL prints while a row's first half is still unterminated);
- the JSON of ``-J`` (nccl-tests 2.17.3 and later, file versions 1-3).

The formats are those of nccl-tests' ``src/common.cu`` and ``src/util.cu`` (BSD licence)
from 2019 to 2.19.6; ``tests/data/nccl`` holds a fixture for each, derived from public
outputs. Imports the standard library only.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from placer.errors import CalibrationError

# --------------------------------------------------------------------------- the tables

# Collectives placer can fit, with SPEC 4's latency steps and the busbw/algbw factor of
# nccl-tests (src/<name>.cu, GetBw): time = steps(n) * alpha + factor(n) * bytes / B.
# `spec` names the SPEC 4 term the collective measures.
COLLECTIVES: dict[str, tuple[str, str]] = {
    "all_reduce": ("allreduce", "ring all-reduce (TP, DP): 2(n-1) alpha + 2(n-1)/n S/B"),
    "all_gather": ("gather", "all-gather: (n-1) alpha + (n-1)/n S/B"),
    "reduce_scatter": ("gather", "reduce-scatter: (n-1) alpha + (n-1)/n S/B"),
    "alltoall": ("gather", "all-to-all (EP): (n-1) alpha + (n-1)/n S/B"),
    "sendrecv": ("p2p", "PP boundary: alpha + S/B"),
}
# Tests placer reads but cannot fit: no SPEC 4 term has their cost.
UNFITTED = ("broadcast", "reduce", "alltoallv", "gather", "scatter", "hypercube")


def steps(family: str, n: int) -> float:
    """Latency terms of one collective of n ranks (SPEC 4)."""
    return {"allreduce": 2.0 * (n - 1), "gather": float(n - 1), "p2p": 1.0}[family]


def factor(family: str, n: int) -> float:
    """busbw / algbw of nccl-tests, the share of the bytes that crosses each link."""
    return {"allreduce": 2.0 * (n - 1) / n, "gather": (n - 1) / n, "p2p": 1.0}[family]


_PROGRAM = re.compile(
    r"(?<![a-z])(all_reduce|all_gather|reduce_scatter|alltoallv|alltoall|sendrecv|broadcast"
    r"|reduce|gather|scatter|hypercube)_perf",
    re.IGNORECASE,
)

# Header column -> meaning. Columns not listed (i_min, i_max, i_p99, i_cv%, copybw, ...) are
# read past; a second `time` starts the in-place half.
_COLUMNS = {
    "size": "size",
    "count": "count",
    "type": "type",
    "redop": "redop",
    "root": "root",
    "time": "time",
    "cputime": "time",
    "algbw": "algbw",
    "busbw": "busbw",
    "#wrong": "wrong",
    "error": "error",
    "timestamp": "timestamp",
}

# Largest deviation old builds accept per data type (their `error` column is the largest
# deviation seen, not a count): src/common.cu DeltaMaxValue before 2022.
_ERROR_TOLERANCE = {"half": 1e-2, "bfloat16": 1e-2, "float": 1e-5, "double": 1e-12}

# Launcher and log-collector prefixes stripped from the start of a line (repeatedly).
_PREFIXES = [
    re.compile(r"\(\w[\w.-]*, rank=\d+, pid=\d+(?:, ip=[\d.:a-fA-F]+)?\) "),  # SkyPilot / Ray
    re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)? "),  # kubectl
    re.compile(r"\[\d+,\d+\]<std(?:out|err)>:"),  # Open MPI --tag-output
    re.compile(r"\[\d+\] "),  # MPICH / Intel MPI -prepend-rank
    re.compile(r" *\d+: "),  # srun --label
]
# NCCL's debug lines: "host:pid:tid [dev] NCCL INFO ...".
_NCCL_MSG = re.compile(r"[\w.\-]+:\d+:\d+ \[\d+\] (?:\S+ )?NCCL (?:INFO|WARN|TRACE|ABORT|ERROR)\b")
_RANK = re.compile(
    r"#\s*Rank\s+(?P<rank>\d+)(?:\s+Group\s+(?P<group>\d+))?\s+Pid\s+(?P<pid>\d+)\s+on\s+"
    r"(?P<host>\S+)\s+device\s+(?P<device>\d+)\s+\[(?P<bus>[^\]]*)\]\s*(?P<name>.*)$"
)
_NTHREAD = re.compile(r"#\s*nThread\s+(\d+)\s+nGpus\s+(\d+)")
_STARTING = re.compile(r"#\s*Collective test starting:\s*(\S+)")
_VERSION = re.compile(r"#\s*nccl-tests version\s+(\S+)")
_SPLIT_ENV = re.compile(
    r"NCCL_TESTS_SPLIT(_MASK)?\s*=\s*[\"']?\s*((?:AND|OR|MOD|DIV|[&|%/])?\s*"
    r"(?:0x[0-9a-f]+|0b[01]+|\d+))",
    re.IGNORECASE,
)
_FOOTER = re.compile(r"#\s*(Out of bounds values|Avg bus bandwidth)")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Rank:
    """One ``Rank`` line: global rank, split group (None in builds before 2022), host."""

    rank: int
    group: int | None
    host: str
    device: int
    line: int


@dataclass(frozen=True)
class Sample:
    """One timed collective: ``bytes`` as nccl-tests prints `size` (the whole buffer for
    all-gather, reduce-scatter and all-to-all), ``time_us`` its mean time."""

    bytes: int
    time_us: float
    in_place: bool
    wrong: bool  # the run reported wrong results for it
    line: int


@dataclass
class Run:
    """One nccl-tests run read from a log (a log may hold several)."""

    source: str
    line: int  # where the run starts
    collective: str | None = None  # a key of COLLECTIVES or UNFITTED, None until known
    collective_from: str = ""  # "log", "json", "file name", "bandwidth ratio", "given"
    version: str | None = None
    nthreads: int = 1
    ngpus: int = 1
    cputime: bool = False  # -C: the time column is CPU time
    split: str | None = None  # NCCL_TESTS_SPLIT when the log or JSON tells it
    ranks: list[Rank] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    ratio: list[float] = field(default_factory=list)  # busbw/algbw of large rows

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    def groups(self, split: str | None = None) -> dict[int, list[Rank]]:
        """Ranks by NCCL_TESTS_SPLIT group: the ``Group`` column when the log has it, else
        computed from ``split`` (``"MOD 8"``, ``"DIV 8"``, ``"AND 0x7"``, ``"OR 7"``, or the
        symbols ``% / & |``) on each rank's MPI process, else one group."""
        rule = split or self.split
        if all(r.group is not None for r in self.ranks) and (split is None):
            out: dict[int, list[Rank]] = {}
            for r in self.ranks:
                out.setdefault(int(r.group), []).append(r)  # type: ignore[arg-type]
            return out
        if rule is None:
            return {0: list(self.ranks)}
        color = split_rule(rule, self.where)
        per_proc = max(1, self.nthreads * self.ngpus)
        out = {}
        for r in self.ranks:
            out.setdefault(color(r.rank // per_proc), []).append(r)
        return out


def split_rule(text: str, where: str = "split"):
    """NCCL_TESTS_SPLIT as nccl-tests reads it (src/common.cu): a function proc -> color."""
    m = re.fullmatch(r"\s*(AND|OR|MOD|DIV|&|\||%|/)\s*(0x[0-9a-fA-F]+|0b[01]+|\d+)\s*", text, re.I)
    if not m:
        raise CalibrationError(
            [
                (
                    where,
                    f"NCCL_TESTS_SPLIT {text!r}: expected AND|OR|MOD|DIV (or & | % /) and a number",
                )
            ]
        )
    op = m.group(1).upper()
    v = int(m.group(2), 0)
    if op in ("MOD", "%", "DIV", "/") and v == 0:
        raise CalibrationError([(where, f"NCCL_TESTS_SPLIT {text!r}: division by 0")])
    return {
        "AND": lambda p: p & v,
        "&": lambda p: p & v,
        "OR": lambda p: p | v,
        "|": lambda p: p | v,
        "MOD": lambda p: p % v,
        "%": lambda p: p % v,
        "DIV": lambda p: p // v,
        "/": lambda p: p // v,
    }[op]


# --------------------------------------------------------------------------- text


def _strip(line: str) -> str:
    line = line.rstrip("\r\n")
    for _ in range(4):
        for p in _PREFIXES:
            m = p.match(line)
            if m:
                line = line[m.end() :]
                break
        else:
            break
    return line


def _tokens(line: str) -> list[tuple[str, int]]:
    """Whitespace tokens with the column where each ends."""
    return [(m.group(), m.end()) for m in re.finditer(r"\S+", line)]


@dataclass
class _Header:
    names: list[str]  # normalised column meanings ("" for a column read past)
    ends: list[int]  # column where each header label ends
    line: int


def _header(line: str, lineno: int) -> _Header | None:
    toks = _tokens(line)
    if toks and toks[0][0] == "#":
        toks = toks[1:]
    elif toks and toks[0][0].startswith("#"):
        toks[0] = (toks[0][0][1:], toks[0][1])
    if len(toks) < 4 or toks[0][0].lower() != "size":
        return None
    names = [_COLUMNS.get(t.lower(), "") for t, _ in toks]
    if "time" not in names:
        return None
    return _Header(names, [e for _, e in toks], lineno)


def _assign(tokens: list[tuple[str, int]], h: _Header) -> list[str | None] | None:
    """Values per header column. A row with fewer tokens than columns (a column printed
    blank) is placed by the columns' right edges, which header and rows share."""
    n = len(h.names)
    if h.names[-1] == "timestamp" and len(tokens) == n + 1:  # "2026-01-02 03:04:05"
        tokens = tokens[:-2] + [(tokens[-2][0] + " " + tokens[-1][0], tokens[-1][1])]
    if len(tokens) == n:
        return [t for t, _ in tokens]
    if len(tokens) > n or len(tokens) < n - 2:
        return None
    out: list[str | None] = [None] * n
    c = 0
    for i, (t, end) in enumerate(tokens):
        last = n - (len(tokens) - i)  # leave a column for every token after this one
        best = min(range(c, last + 1), key=lambda k: abs(h.ends[k] - end))
        out[best] = t
        c = best + 1
    return out


def _number(text: str | None) -> float | None:
    if text is None or text.upper() == "N/A":
        return None
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _row(run: Run, h: _Header, tokens: list[tuple[str, int]], lineno: int) -> None:
    vals = _assign(tokens, h)
    if vals is None:
        run.skipped.append((lineno, f"{len(tokens)} values under a header of {len(h.names)}"))
        return
    get = {}
    halves: list[dict[str, str | None]] = []
    for name, v in zip(h.names, vals):
        if name == "time":
            halves.append({})
        if not name:
            continue
        if halves and name in ("time", "algbw", "busbw", "wrong", "error"):
            halves[-1][name] = v
        else:
            get[name] = v
    size = _number(get.get("size"))
    if size is None or size < 0 or size != int(size):
        run.skipped.append((lineno, f"size {get.get('size')!r} is not a byte count"))
        return
    dtype = (get.get("type") or "").lower()
    for i, half in enumerate(halves[:2]):
        t = _number(half.get("time"))
        if t is None:
            if half.get("time") is not None:
                run.skipped.append((lineno, f"time {half.get('time')!r} is not a number"))
            continue
        wrong = False
        if half.get("wrong") is not None:
            w = _number(half["wrong"])
            wrong = bool(w) if w is not None else False
        elif half.get("error") is not None:
            w = _number(half["error"])
            wrong = w is not None and w > _ERROR_TOLERANCE.get(dtype, 0.0)
        run.samples.append(Sample(int(size), t, i == 1, wrong, lineno))
        alg, bus = _number(half.get("algbw")), _number(half.get("busbw"))
        if alg and bus and alg >= 1.0:  # two printed decimals: enough digits from 1 GB/s
            run.ratio.append(bus / alg)


def parse_text(text: str, source: str) -> list[Run]:
    """Every run in a text log (see the module docstring)."""
    runs: list[Run] = []
    run: Run | None = None
    header: _Header | None = None
    # the first half of a row cut by an NCCL line: (tokens, line, column where it was cut)
    pending: tuple[list[tuple[str, int]], int, int] | None = None

    def fresh(lineno: int, inherit: Run | None = None) -> Run:
        nonlocal header, pending
        r = Run(source, lineno)
        if inherit is not None:  # a second table with no preamble of its own
            r.ranks, r.split = list(inherit.ranks), inherit.split
            r.nthreads, r.ngpus, r.collective = inherit.nthreads, inherit.ngpus, inherit.collective
            r.collective_from, r.version = inherit.collective_from, inherit.version
        runs.append(r)
        header, pending = None, None
        return r

    def started(r: Run | None) -> bool:
        return r is not None and bool(r.ranks or r.samples or header)

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip(raw)
        msg = _NCCL_MSG.search(line)
        if msg:
            if header is not None and run is not None and re.match(r"\s*\d+\s", line):
                # a row's first half: NCCL's line starts where one of the header's columns
                # ends (the regex alone may take the root's "-1" for part of a hostname)
                cut = next((e for e in header.ends if _NCCL_MSG.match(line, e)), msg.start())
                pending = (_tokens(line[:cut]), lineno, cut)
            continue
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            env = _SPLIT_ENV.search(s)
            if env:  # an echoed environment applies to the run that follows
                if run is None or started(run):
                    run = fresh(lineno)
                run.split = ("& " if env.group(1) else "") + env.group(2).strip()
                continue
        if s.startswith("#"):
            if pending is not None and run is not None:
                run.skipped.append((pending[1], "row cut by an NCCL line and never completed"))
                pending = None
            preamble = _VERSION.match(s) or _STARTING.match(s) or _NTHREAD.match(s)
            if preamble:
                if run is None or started(run):
                    run = fresh(lineno)
                if mm := _VERSION.match(s):
                    run.version = mm.group(1)
                elif mm := _STARTING.match(s):
                    prog = _PROGRAM.search(mm.group(1) + "_perf")
                    if prog:
                        run.collective, run.collective_from = prog.group(1).lower(), "log"
                elif mm := _NTHREAD.match(s):
                    run.nthreads, run.ngpus = int(mm.group(1)), int(mm.group(2))
                continue
            if run is None:
                run = fresh(lineno)
            if mm := _RANK.match(s):
                g = mm.group("group")
                run.ranks.append(
                    Rank(
                        int(mm.group("rank")),
                        int(g) if g is not None else None,
                        mm.group("host"),
                        int(mm.group("device")),
                        lineno,
                    )
                )
                continue
            h = _header(line, lineno)
            if h is not None:
                if run.samples:
                    run = fresh(lineno, inherit=run)
                header = h
                run.cputime = "cputime" in s.lower()
            continue
        if header is None or run is None:
            continue
        toks = _tokens(line)
        if pending is not None:
            head, at, cut = pending
            pending = None
            _row(run, header, head + [(t, e + cut) for t, e in toks], at)
            continue
        if re.fullmatch(r"\d+", toks[0][0]):
            _row(run, header, toks, lineno)
    return [r for r in runs if r.ranks or r.samples]


# --------------------------------------------------------------------------- JSON


def parse_json(doc: dict, source: str) -> list[Run]:
    """A run from the JSON of ``-J`` (file versions 1-3)."""
    where = f"{source}"
    if not isinstance(doc.get("results"), list):
        raise CalibrationError([(where, "JSON without a `results` list: not nccl-tests -J output")])
    run = Run(source, 1)
    args = doc.get("args") or []
    if args and isinstance(args[0], str) and (p := _PROGRAM.search(Path(args[0]).name)):
        run.collective, run.collective_from = p.group(1).lower(), "json"
    for e in doc.get("env") or []:
        if isinstance(e, str) and e.startswith(("NCCL_TESTS_SPLIT=", "NCCL_TESTS_SPLIT_MASK=")):
            k, v = e.split("=", 1)
            run.split = v if k == "NCCL_TESTS_SPLIT" else f"& {v}"
    cfg = doc.get("config") or {}
    run.nthreads = int(cfg.get("nthreads") or 1)
    run.ngpus = int(cfg.get("ngpus") or 1)
    for i, d in enumerate(cfg.get("devices") or doc.get("devices") or []):
        try:
            run.ranks.append(
                Rank(
                    int(d["rank"]),
                    int(d.get("group", 0)),
                    str(d["hostname"]),
                    int(d.get("device", 0)),
                    i,
                )
            )
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(
                [(f"{where}: config.devices[{i}]", "needs rank and hostname")]
            ) from None
    for i, r in enumerate(doc["results"]):
        if not isinstance(r, dict):
            continue
        size = r.get("size")
        if not isinstance(size, int) or size < 0:
            run.skipped.append((i, f"results[{i}].size {size!r} is not a byte count"))
            continue
        dtype = str(r.get("type", "")).lower()
        for key, inplace in (("out_of_place", False), ("in_place", True)):
            half = r.get(key)
            if not isinstance(half, dict):
                continue
            if "cpu_time" in half:
                run.cputime = True
            t = _number(str(half.get("time", half.get("cpu_time"))))
            if t is None:
                run.skipped.append((i, f"results[{i}].{key}.time is not a number"))
                continue
            w = half.get("nwrong")
            wrong = bool(_number(str(w))) if w is not None else False
            run.samples.append(Sample(size, t, inplace, wrong, i))
            alg, bus = _number(str(half.get("alg_bw"))), _number(str(half.get("bus_bw")))
            if alg and bus and alg >= 1.0:
                run.ratio.append(bus / alg)
        del dtype
    return [run]


# --------------------------------------------------------------------------- entry point


def read(path: str | Path, text: str | None = None, collective: str | None = None) -> list[Run]:
    """Every run in an nccl-tests log or ``-J`` JSON file, with its collective resolved
    (``collective`` given, else the log's own line, the JSON's program, the file name, or
    the busbw/algbw ratio when that is unambiguous).

    Raises :class:`~placer.errors.CalibrationError` naming the file (and line) when the
    file holds no run, a run has no ``Rank`` lines, a rank appears twice, or the
    collective cannot be told.
    """
    source = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise CalibrationError([(source, f"cannot read: {e.strerror or e}")]) from None
    stripped = text.lstrip()
    runs: list[Run]
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise CalibrationError(
                [(f"{source}:{e.lineno}", f"not valid JSON (a truncated -J file?): {e.msg}")]
            ) from None
        runs = parse_json(doc, source)
    else:
        runs = parse_text(text, source)
    if not any(r.samples for r in runs):
        raise CalibrationError(
            [
                (
                    source,
                    "no nccl-tests results found (no `#  size  count  type ...` table with rows)",
                )
            ]
        )
    name_hint = _PROGRAM.search(Path(source).name)
    problems: list[tuple[str, str]] = []
    for r in runs:
        if not r.ranks:
            problems.append(
                (
                    r.where,
                    "no `#  Rank N ... on HOST device D` lines: the ranks "
                    "and their hosts are unknown (keep the log's preamble)",
                )
            )
            continue
        seen: dict[int, int] = {}
        for k in r.ranks:
            if k.rank in seen:
                problems.append(
                    (
                        f"{source}:{k.line}",
                        f"rank {k.rank} appears twice (also line {seen[k.rank]}): several "
                        "independent runs are interleaved (nccl-tests built without MPI=1 but "
                        "started by mpirun?)",
                    )
                )
                break
            seen[k.rank] = k.line
        if collective is not None:
            r.collective, r.collective_from = collective, "given"
        elif r.collective is None and name_hint:
            r.collective, r.collective_from = name_hint.group(1).lower(), "file name"
        elif r.collective is None:
            guess = _by_ratio(r)
            if guess is None:
                problems.append(
                    (
                        r.where,
                        "cannot tell the collective: name the file after the "
                        "test (all_reduce_perf.log, ...) or give it (--collective)",
                    )
                )
            else:
                r.collective, r.collective_from = guess, "bandwidth ratio"
    if problems:
        raise CalibrationError(problems)
    return [r for r in runs if r.samples]


def _by_ratio(r: Run) -> str | None:
    """all_reduce or an all-gather-like test from busbw/algbw, when n makes it unambiguous."""
    n = len(r.groups().get(r.ranks[0].group or 0, r.ranks)) if r.ranks else 0
    if n < 3 or not r.ratio:
        return None
    q = sorted(r.ratio)[len(r.ratio) // 2]
    for name in ("all_reduce", "all_gather", "sendrecv"):
        if abs(q - factor(COLLECTIVES[name][0], n)) < 0.01 * q:
            return name
    return None
