"""The `placer` command line: parse arguments, call the library, render with rich.

Exit codes (SPEC 2.2): 0 success (a placement, or a check with no violation); 1 a check
with violations or a solve with no placement (infeasible, no_solution); 2 bad input or
usage. Domain errors become one red line per problem on stderr, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from placer.errors import PlacementWarning, PlacerError


def _reflow(text: str | None) -> str | None:
    """Help text as paragraphs without hard line breaks: a docstring's single newlines become
    spaces (typer's rich panels would print them), blank lines stay; a paragraph opening with
    click's \\b marker keeps its lines."""
    if not text:
        return text
    paras = text.split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(x.strip() for x in p.splitlines()) for p in paras
    )


class _Group(TyperGroup):
    """The top-level command group: on construction (typer builds it with every command and
    sub-group already made) the help of each command, sub-command and parameter is reflowed,
    so no help line breaks mid-sentence whichever branch added the command."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        todo: list = [self]  # click commands (typer's own click: no import of click here)
        while todo:
            cmd = todo.pop()
            cmd.help = _reflow(cmd.help)
            cmd.short_help = _reflow(cmd.short_help)
            for prm in cmd.params:
                if getattr(prm, "help", None):
                    prm.help = _reflow(prm.help)
            todo.extend(getattr(cmd, "commands", {}).values())


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    help="placer: place AI jobs on multi-campus GPU clusters and lease out whole blocks.",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from placer import __version__

        typer.echo(f"placer {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print placer's version and exit.",
    ),
) -> None:
    pass


# wide enough for the tables when piped (rich falls back to 80 columns off a terminal)
_WIDTH = None if sys.stdout.isatty() else 150
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)


MAX_ERRORS = 20  # located errors printed; the rest are counted (the library keeps them all)


def _fail(e: PlacerError) -> None:
    """One red line per problem (the first MAX_ERRORS, then a count) and exit 2."""
    problems = getattr(e, "problems", None) or [("", str(e))]
    for loc, msg in problems[:MAX_ERRORS]:
        err.print(
            f"[red]error:[/red] {loc + ': ' if loc else ''}{msg}",
            markup=True,
            soft_wrap=True,
        )
    if len(problems) > MAX_ERRORS:
        err.print(f"[red]error:[/red] ... and {len(problems) - MAX_ERRORS:,} more", markup=True)
    raise typer.Exit(2)


def _check_out(path: Path | None, flag: str = "--out") -> None:
    """Exit 2 before any work when an output file cannot be written where asked (its folder
    missing, or a directory given): a long solve is not run only to fail at its end."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    why = None
    if path.is_dir():
        why = f"{str(path)!r} is a directory; give a file name"
    elif not folder.is_dir():
        why = f"the folder {str(folder)!r} does not exist"
    elif not os.access(folder, os.W_OK):
        why = f"the folder {str(folder)!r} is not writable"
    if why:
        err.print(f"[red]error:[/red] {flag}: {why}", markup=True, soft_wrap=True)
        raise typer.Exit(2)


def _load(path: Path, fabric: Path | None = None):
    """Load an instance; with `fabric`, a calibration overlay applied first (--fabric)."""
    from placer import load_instance

    try:
        if fabric is None:
            return load_instance(path)
        from placer.calibrate.overlay import load_instance_with

        return load_instance_with(path, fabric)
    except PlacerError as e:
        _fail(e)


FABRIC = (
    "Apply this calibration overlay first (`placer calibrate nccl|steps -o`): measured "
    "latency_us / bandwidth_GBps per level and site, jobs' compute_ms / overlap / messages."
)


def _warn(inst) -> None:
    for w in inst.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)


@contextmanager
def _placement_warnings() -> Iterator[None]:
    """The library's PlacementWarnings (a placement naming another instance) as the CLI's
    ``warning:`` lines on stderr, each time; other warnings are shown as before."""
    show = warnings.showwarning

    def shown(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PlacementWarning):
            err.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)
        else:
            show(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", PlacementWarning)
        warnings.showwarning = shown
        yield


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 10 ** (-digits)):
            return f"{x:.{digits}g}" if abs(x) < 1e5 else f"{x:,.0f}"
        return f"{x:,.{digits}f}"
    return str(x)


@app.command()
def validate(file: Path = typer.Argument(..., help="Instance file (YAML or JSON).")) -> None:
    """Validate an instance: 'ok' with a one-line summary, or every located error."""
    inst = _load(file)
    _warn(inst)
    ix = inst.index
    out.print(
        f"ok {inst.name}: {ix.n_sites} site(s), {ix.n_gpus:,} GPUs "
        f"({int(ix.available.sum()):,} available), {len(inst.jobs)} job(s), "
        f"{len(inst.offers)} offer(s), {len(inst.warnings)} warning(s)"
    )


@app.command()
def show(
    file: Path = typer.Argument(..., help="Instance file (YAML or JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Show an instance: sites, fabric, WAN paths, jobs and offers."""
    from placer.summary import instance_summary

    inst = _load(file)
    _warn(inst)
    summary = instance_summary(inst)
    if as_json:
        out.print_json(json.dumps(summary))
        return
    t = Table(title=f"{inst.name}: sites")
    for c in (
        "site",
        "GPUs",
        "available",
        "types",
        "nodes",
        *[f"{lv}s" for lv in inst.topology.levels[1:-1]],
        "power cap kW",
        "node fail/day",
    ):
        t.add_column(c, justify="right" if c != "site" else "left")
    for s in summary["sites"]:
        t.add_row(
            s["name"],
            _fmt(s["gpus"]),
            _fmt(s["available"]),
            ", ".join(f"{k} {v:,}" for k, v in s["types"].items()),
            _fmt(s["nodes"]),
            *[_fmt(s["domains"][lv]) for lv in inst.topology.levels[1:-1]],
            _fmt(s["power_cap_kW"]),
            _fmt(s["node_failures_per_day"]),
        )
    out.print(t)
    t = Table(title="fabric (latency us / bandwidth GB/s per GPU)")
    t.add_column("site")
    for lv in inst.topology.levels:
        t.add_column(lv, justify="right")
    for s in summary["sites"]:
        t.add_row(
            s["name"],
            *[f"{f['latency_us']:g} / {f['bandwidth_GBps']:g}" for f in s["fabric"].values()],
        )
    out.print(t)
    if summary["wan_paths"]:
        t = Table(title="WAN paths (min latency)")
        for c in ("from", "to", "via", "latency us", "bandwidth GB/s", "failures/day"):
            t.add_column(c)
        for p in summary["wan_paths"]:
            t.add_row(
                p["from"],
                p["to"],
                " - ".join(p["via"]),
                _fmt(p["latency_us"]),
                _fmt(p["bandwidth_GBps"]),
                _fmt(p["failures_per_day"]),
            )
        out.print(t)
    t = Table(title="jobs")
    for c in ("job", "kind", "types", "tp x pp", "units", "GPUs max", "scope", "value", "running"):
        t.add_column(c)
    for j in summary["jobs"]:
        t.add_row(
            j["name"],
            j["kind"],
            ",".join(j["gpu_types"] or ["any"]),
            f"{j['tp']} x {j['pp']}",
            f"{j['units_min']}..{j['units_max']}",
            _fmt(j["gpus_max"]),
            " ".join(f"{k}:{v}" for k, v in j["scope"].items()),
            _fmt(j["value"]),
            j["running"],
        )
    out.print(t)
    planned = [j for j in summary["jobs"] if j.get("plans")]
    if planned:  # SPEC v3: each job's plans, its current one marked
        t = Table(title="plans (* = current plan)")
        cols = ("job", "plan", "tp x pp", "units", "GPUs max", "microbatches", "scope")
        for c in (*cols, "cross-site every", "value"):
            t.add_column(c)
        for j in planned:
            for p in j["plans"]:
                mark = "*" if p["name"] == j["current_plan"] else ""
                t.add_row(
                    j["name"],
                    p["name"] + mark,
                    f"{p['tp']} x {p['pp']}",
                    f"{p['units_min']}..{p['units_max']}",
                    _fmt(p["gpus_max"]),
                    _fmt(p["microbatches"]),
                    " ".join(f"{k}:{v}" for k, v in p["scope"].items()),
                    f"{p['cross_site_every']:g}",  # what sets diloco-style plans apart
                    _fmt(p["value"]),
                )
        out.print(t)
    if summary["offers"]:
        t = Table(title="lease offers")
        for c in ("offer", "price/GPU-h", "level", "GPUs", "sites", "types", "committed"):
            t.add_column(c)
        for o in summary["offers"]:
            hi = "inf" if o["max_gpus"] is None else f"{o['max_gpus']:,}"
            t.add_row(
                o["name"],
                _fmt(o["price_per_gpu_hour"]),
                o["level"],
                f"{o['min_gpus']:,}..{hi}",
                ",".join(o["sites"] or ["any"]),
                ",".join(o["gpu_types"] or ["any"]),
                ",".join(o["committed_blocks"]),
            )
        out.print(t)


@app.command()
def schema(
    placement: bool = typer.Option(False, "--placement", help="The placement schema instead."),
) -> None:
    """Print the JSON Schema of the instance (or placement) format."""
    from placer.io import instance_schema, placement_schema

    sys.stdout.write(
        json.dumps(placement_schema() if placement else instance_schema(), indent=1) + "\n"
    )


def _load_pair(instance: Path, placement: Path, strict: bool, fabric: Path | None = None):
    from placer import load_placement

    inst = _load(instance, fabric)
    try:
        return inst, load_placement(placement, inst if strict else None)
    except PlacerError as e:
        _fail(e)


@app.command()
def score(
    instance: Path = typer.Argument(..., help="Instance file."),
    placement: Path = typer.Argument(..., help="Placement file (SPEC 2 JSON)."),
    as_json: bool = typer.Option(False, "--json", help="SPEC 2.1 JSON on stdout."),
    fabric: Path | None = typer.Option(None, "--fabric", help=FABRIC),
) -> None:
    """Score a placement with the kernel: per-job times, goodput, value, and totals."""
    from placer.api import score as score_fn

    inst, pl = _load_pair(instance, placement, strict=True, fabric=fabric)
    _warn(inst)  # on stderr, also with --json (stdout stays the JSON alone)
    try:
        with _placement_warnings():
            s = score_fn(inst, pl)
    except PlacerError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(json.dumps(s.to_dict(), indent=1) + "\n")
        return
    render_score(s.to_dict(), title=f"{inst.name}: score")


def render_score(d: dict, title: str) -> None:
    t = Table(title=title)
    # SPEC v3: a plan column only when some placed job runs a plan (v1/v2 output unchanged)
    planned = any(j.get("plan") for j in d["jobs"])
    cols = (
        "job",
        "units",
        *(("plan",) if planned else ()),
        "GPUs",
        "T_tp ms",
        "T_pp ms",
        "T_dp ms",
        "T_ep ms",
        "step ms",
        "efficiency",
        "lost",
        "goodput",
        "value",
        "moved",
    )
    for c in cols:
        t.add_column(c, justify="left" if c in ("job", "plan") else "right")
    for j in d["jobs"]:
        t.add_row(
            j["name"],
            _fmt(j["units"]),
            *([j.get("plan") or ""] if planned else []),
            _fmt(j["gpus"]),
            _fmt(j["T_tp_ms"]),
            _fmt(j["T_pp_ms"]),
            _fmt(j["T_dp_ms"]),
            _fmt(j["T_ep_ms"]),
            _fmt(j["step_ms"], 1),
            _fmt(j["efficiency"], 4),
            _fmt(j["lost"], 4),
            _fmt(j["goodput"], 4),
            _fmt(j["value"], 1),
            _fmt(j["moved"]),
        )
    out.print(t)
    if d["offers"]:
        t = Table(title="offers")
        for c in ("offer", "accepted", "GPUs", "revenue"):
            t.add_column(c)
        for o in d["offers"]:
            t.add_row(o["offer"], _fmt(o["accepted"]), _fmt(o["gpus"]), _fmt(o["revenue"], 1))
        out.print(t)
    tt = d["totals"]
    out.print(
        f"objective [bold]{tt['objective']:,.1f}[/bold] vu = job value {tt['job_value']:,.1f}"
        f" + lease revenue {tt['lease_revenue']:,.1f} - migration {tt['migration_cost']:,.1f}"
        f"; GPUs used {tt['gpus_used']:,}, leased {tt['gpus_leased']:,}"
    )


@app.command()
def check(
    instance: Path = typer.Argument(..., help="Instance file."),
    placement: Path = typer.Argument(..., help="Placement file (SPEC 2 JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Violations as JSON."),
) -> None:
    """Check a placement against every rule of SPEC 3; exit 1 when any is broken."""
    from placer.api import check as check_fn

    inst, pl = _load_pair(instance, placement, strict=False)
    _warn(inst)  # on stderr, also with --json (stdout stays the JSON alone)
    with _placement_warnings():
        vs = check_fn(inst, pl)
    if as_json:
        sys.stdout.write(
            json.dumps({"feasible": not vs, "violations": [v.to_dict() for v in vs]}, indent=1)
            + "\n"
        )
    else:
        if not vs:
            out.print(f"ok: the placement satisfies every rule of SPEC 3 for {inst.name}")
        for v in vs:
            out.print(f"[red]violation[/red] {v}", soft_wrap=True)
    if vs:
        raise typer.Exit(1)


@app.command()
def solve(
    instance: Path = typer.Argument(..., help="Instance file."),
    solver: str = typer.Option("cpsat", "--solver", "-s", help="Backend (see `placer solvers`)."),
    time_limit: float = typer.Option(60.0, "--time-limit", "-t", help="Seconds; 0 = no limit."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed + 1 thread = same output)."),
    threads: int = typer.Option(1, "--threads", help="Solver threads."),
    work_limit: float | None = typer.Option(
        None, "--work-limit", help="CP-SAT deterministic time limit."
    ),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write SPEC 2 JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the placement JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view or tables."),
    first_plans: bool = typer.Option(
        False,
        "--first-plans",
        help="Hold each job to its first plan (a running job to its current one): what a "
        "scheduler without plan choice would run (SPEC v3).",
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-O",
        help="Backend option KEY=VALUE (e.g. policy=leases-first, "
        "exact_small=false, mip_solver=cbc); repeatable.",
    ),
    fabric: Path | None = typer.Option(None, "--fabric", help=FABRIC),
) -> None:
    """Place jobs and leases to maximise the score; exit 1 when there is no placement."""
    from placer.api import solve as solve_fn
    from placer.io import write_json_atomic

    _check_out(out_file)
    t_load = time.perf_counter()
    inst = _load(instance, fabric)
    # the expanded topology and its GPU ids belong to loading, not to the solve's limit
    inst.index.id_table()
    load_seconds = time.perf_counter() - t_load
    if first_plans:
        from placer.solvers.plans import first_plans as hold

        inst = hold(inst)
    _warn(inst)  # on stderr, also with --json or --quiet (no live view, no tables)
    opts: dict[str, Any] = {"work_limit": work_limit} if work_limit is not None else {}
    opts.update(_key_values(option, "--option"))
    try:
        if quiet or as_json:
            res = solve_fn(
                inst,
                solver=solver,
                time_limit=time_limit or None,
                seed=seed,
                threads=threads,
                **opts,
            )
        else:
            res = _solve_live(inst, solver, time_limit, seed, threads, opts, solve_fn)
    except PlacerError as e:
        _fail(e)
    res.placement.load_seconds = round(load_seconds, 3)
    doc = res.placement.model_dump(mode="json")
    if out_file is not None:
        write_json_atomic(out_file, doc)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    elif not quiet and res.status.has_placement:
        render_solution(inst, res)
    if not res.status.has_placement:
        bound = "" if res.bound is None else f" (bound {res.bound:,.0f})"
        err.print(
            f"[red]{res.status}[/red] by {res.solver} in {res.seconds:.2f} s{bound}: {res.reason}",
            soft_wrap=True,
        )
        raise typer.Exit(1)


def _solve_live(inst, solver, time_limit, seed, threads, opts, solve_fn):
    """Solve with a live line on stderr: stage, incumbent, bound, gap, elapsed."""
    from rich.live import Live

    state: dict[str, Any] = {"stage": "starting"}
    t0 = time.perf_counter()

    def line() -> str:
        inc, bnd = state.get("incumbent"), state.get("bound")
        gap = (
            "-"
            if inc is None or bnd is None
            else f"{100 * max(0.0, bnd - inc) / max(abs(bnd), 1):.3f}%"
        )
        return (
            f"[bold]{inst.name}[/bold] {solver} | {state['stage']} | incumbent "
            f"{'-' if inc is None else f'{inc:,.0f}'} | bound "
            f"{'-' if bnd is None else f'{bnd:,.0f}'} | gap {gap} | "
            f"{time.perf_counter() - t0:.1f} s / {time_limit or 'no limit'}"
        )

    with Live(line(), console=err, refresh_per_second=8, transient=True) as live:

        def progress(**kw):
            state.update({k: v for k, v in kw.items() if v is not None})
            live.update(line())

        from placer.solvers import solver_class
        from placer.solvers.decomposition.pipeline import DecompositionSolver

        extra = dict(opts)
        try:
            if issubclass(
                solver_class(solver if solver != "auto" else "cpsat"), DecompositionSolver
            ):
                extra["progress"] = progress
        except PlacerError:
            pass
        return solve_fn(
            inst, solver=solver, time_limit=time_limit or None, seed=seed, threads=threads, **extra
        )


def render_solution(inst, res) -> None:
    from placer.summary import solution_summary

    sm = solution_summary(inst, res)
    t = Table(title=f"{inst.name}: sites")
    for c in ("site", "GPUs", "used", "leased", "idle", "unavailable"):
        t.add_column(c, justify="left" if c == "site" else "right")
    for s in sm["sites"]:
        t.add_row(
            s["name"],
            _fmt(s["gpus"]),
            _fmt(s["used"]),
            _fmt(s["leased"]),
            _fmt(s["idle"]),
            _fmt(s["unavailable"]),
        )
    out.print(t)
    t = Table(title="jobs")
    # SPEC v3: a plan column only when some job has plans (v1/v2 output is unchanged)
    planned = any(inst.job(j["name"]).plans for j in sm["jobs"])
    cols = ("job", "units", "plan", "GPUs", "type", "sites", "efficiency", "goodput", "value")
    for c in (*[c for c in cols if planned or c != "plan"], "reason"):
        t.add_column(
            c, justify="left" if c in ("job", "plan", "sites", "reason", "type") else "right"
        )
    for j in sm["jobs"]:
        t.add_row(
            j["name"],
            f"{j['units']}/{j['units_max']}",
            *([j["plan"] or ""] if planned else []),
            _fmt(j["gpus"]),
            j["type"],
            ",".join(j["sites"]),
            _fmt(j["efficiency"], 4),
            _fmt(j["goodput"], 4),
            _fmt(j["value"], 0),
            j["reason"] or "",
        )
    out.print(t)
    if sm["offers"]:
        t = Table(title="offers")
        for c in ("offer", "accepted", "blocks", "GPUs", "revenue"):
            t.add_column(c)
        for o in sm["offers"]:
            t.add_row(
                o["offer"], _fmt(o["accepted"]), o["blocks"], _fmt(o["gpus"]), _fmt(o["revenue"], 0)
            )
        out.print(t)
    gap = "-" if res.gap is None else f"{100 * res.gap:.3f}%"
    bound = "-" if res.bound is None else f"{res.bound:,.0f}"
    out.print(
        f"[bold]{res.status}[/bold] by {res.solver} in {res.seconds:.2f} s: objective "
        f"[bold]{res.objective:,.0f}[/bold] vu, bound {bound}, gap {gap}"
    )


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    """KEY=VALUE options to a dict (values parsed by :func:`_parse_value`); exit 2 if bad."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            err.print(f"[red]error:[/red] {flag} {item!r}: expected KEY=VALUE")
            raise typer.Exit(2)
        out[key] = _parse_value(value)
    return out


def _parse_value(text: str) -> Any:
    """'true'/'false', integers, floats, else the string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


@app.command()
def generate(
    family: str = typer.Argument(..., help="Family (see `placer generate --list x`)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same instance."),
    param: list[str] = typer.Option([], "--param", "-p", help="Family parameter KEY=VALUE."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the YAML here."),
    list_families: bool = typer.Option(False, "--list", help="List families and parameters."),
) -> None:
    """Generate a seeded instance of a family (superpod, multicampus, nvl72, hetero, ...)."""
    from placer import generators

    if list_families:
        for name, fn in generators.FAMILIES.items():
            doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            out.print(f"[bold]{name}[/bold]: {doc}")
            out.print(
                "   " + ", ".join(f"{k}={v!r}" for k, v in generators.params(name).items()),
                soft_wrap=True,
            )
        return
    kw = _key_values(param, "--param")
    _check_out(out_file)
    try:
        d = generators.generate(family, seed=seed, **kw)
    except (TypeError, ValueError) as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    text = generators.to_yaml(
        d,
        comment=f"placer generate {family} --seed {seed}" + "".join(f" --param {p}" for p in param),
    )
    if out_file is None:
        sys.stdout.write(text)
    else:
        tmp = out_file.with_name(f".{out_file.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out_file)
        out.print(f"wrote {out_file}")


@app.command("solvers")
def solvers_cmd() -> None:
    """List the solver backends, whether each is available here, and their options."""
    from placer.solvers import list_solvers, options

    t = Table(title="solvers")
    for c in ("name", "available", "what", "options (--option KEY=VALUE)"):
        t.add_column(c)
    for name, ok, desc in list_solvers():
        opts = "\n".join(f"{k}={d}: {what}" for k, d, what in options(name)) or "-"
        t.add_row(name, "yes" if ok else "no", desc, opts)
    out.print(t)


def _vu(x: float | None) -> str:
    """A value in vu, short: 22.4 M, 312 k, 8,623."""
    if x is None:
        return "-"
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:+,.1f} M"
    if a >= 1e4:
        return f"{x / 1e3:+,.1f} k"
    return f"{x:+,.0f}"


@app.command()
def decide(
    instance: Path = typer.Argument(..., help="Instance file."),
    offer: str | None = typer.Option(None, "--offer", help="Decide this offer only."),
    time_limit: float = typer.Option(60.0, "--time-limit", "-t", help="Seconds per solve."),
    sweep: list[str] = typer.Option(
        [],
        "--sweep",
        help="PARAM=LO:HI[:N]: scale PARAM by factors LO..HI (geometric, N points, default "
        "5); PARAM: wan.latency, wan.bandwidth, wan.failures, price, node_failures, "
        "jobs.NAME.cross_site_every. Repeatable.",
    ),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Parallel solves (local)."),
    engine: str = typer.Option("local", "--engine", help="local | ray (RAY_ADDRESS)."),
    solver: str = typer.Option("cpsat", "--solver", "-s", help="Backend for every solve."),
    seed: int = typer.Option(0, "--seed", help="Seed of every solve."),
    tolerance: float = typer.Option(0.05, "--tolerance", help="Bisection: stop at hi/lo <= 1+tol."),
    plot_dir: Path | None = typer.Option(None, "--plot", help="Write sweep plots here (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="The decision as JSON on stdout."),
    first_plans: bool = typer.Option(
        False,
        "--first-plans",
        help="Hold each job to its first plan (a running job to its current one): the answer "
        "without plan choice (SPEC v3).",
    ),
    option: list[str] = typer.Option([], "--option", "-O", help="Backend option KEY=VALUE."),
    fabric: Path | None = typer.Option(None, "--fabric", help=FABRIC),
) -> None:
    """Keep or lease: each offer forced accepted and forced declined, the worth of accepting
    and the break-even price with proven intervals, and sweeps of the parameters."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from placer.decision import decide as decide_fn
    from placer.decision import plot, sweeps_arg

    inst = _load(instance, fabric)
    if first_plans:
        from placer.solvers.plans import first_plans as hold

        inst = hold(inst)
    _warn(inst)  # on stderr, also with --json
    opts = _key_values(option, "--option")
    if jobs is not None and jobs < 1:
        err.print(f"[red]error:[/red] --jobs: must be >= 1, got {jobs}")
        raise typer.Exit(2)
    try:
        sweep = sweeps_arg(sweep, inst, flag="--sweep")
    except PlacerError as e:
        _fail(e)
    kwargs = dict(
        offer=offer,
        sweeps=sweep,
        engine=engine,
        jobs=jobs,
        time_limit=time_limit or None,
        seed=seed,
        solver=solver,
        tolerance=tolerance,
        **opts,
    )
    try:
        if as_json:
            res = decide_fn(inst, **kwargs)
        else:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task(f"{inst.name}: forced solves", total=None)

                def progress(stage: str, done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                res = decide_fn(inst, progress=progress, **kwargs)
        paths = plot(res, str(plot_dir)) if plot_dir is not None and res.sweeps else []
    except PlacerError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=1) + "\n")
        return
    t = Table(title=f"{inst.name}: keep or lease")
    for c in (
        "offer",
        "price",
        "accept: objective",
        "bound",
        "leased GPUs",
        "decline: objective",
        "bound",
        "worth",
        "proven",
    ):
        t.add_column(c, justify="left" if c == "offer" else "right")
    for o in res.offers:
        t.add_row(
            o.offer,
            _fmt(o.price),
            _fmt(o.accept.objective, 0),
            _fmt(o.accept.bound, 0),
            _fmt(o.accept.gpus),
            _fmt(o.decline.objective, 0),
            _fmt(o.decline.bound, 0),
            _vu(o.worth),
            f"{_vu(o.worth_interval[0])}..{_vu(o.worth_interval[1])}",
        )
    out.print(t)
    for s in res.sweeps:
        t = Table(title=f"sweep {s.param} ({s.offer})")
        planned = any(p.accept_plans or p.decline_plans for p in s.points)  # SPEC v3
        cols = ("factor", "accept", "decline", "worth", "decision")
        for c in (*cols, *(("plans (accept / decline)",) if planned else ())):
            t.add_column(c, justify="right")
        for p in s.points:
            row = [
                f"x{p.factor:.4g}",
                _fmt(p.accept, 0),
                _fmt(p.decline, 0),
                _vu(p.worth),
                p.decision,
            ]
            if planned:
                a, d = _plans(p.accept_plans, True), _plans(p.decline_plans, True)
                row.append(f"{a} / {d}")
            t.add_row(*row)
        out.print(t)
    for o in res.offers:
        out.print(_answer(inst, o), soft_wrap=True)
        if o.accept.plans or o.decline.plans:
            out.print(
                f"  plans: accepting, {_plans(o.accept.plans)}; declining, "
                f"{_plans(o.decline.plans)}",
                soft_wrap=True,
            )
    for s in res.sweeps:
        if s.break_even:
            b = s.break_even
            out.print(
                f"{s.offer}: the decision flips from {b['from']} to {b['to']} at {s.param} "
                f"x{b['factor']:.3g} (x{b['interval'][0]:.3g}..x{b['interval'][1]:.3g})"
            )
        else:
            out.print(f"{s.offer}: {s.param} does not flip the decision in its range")
    for p in paths:
        out.print(f"wrote {p}")


def _plans(plans: dict[str, str], short: bool = False) -> str:
    """job -> plan as text: `job runs plan` (or the plan alone, `short`) for one job,
    `job=plan` pairs for several."""
    if not plans:
        return "-"
    if len(plans) == 1:
        ((job, plan),) = plans.items()
        return plan if short else f"{job} runs {plan}"
    return ", ".join(f"{j}={p}" for j, p in sorted(plans.items()))


def _answer(inst, o) -> str:
    """The one-line answer for an offer."""
    blocks = o.offer
    if o.worth is None:
        why = o.accept.reason or o.decline.reason
        return f"{o.offer}: {o.decision} (one side has no placement: {why})"
    lo, hi = o.worth_interval
    if o.decision == "accept":
        head = f"lease to {blocks}: worth {_vu(o.worth)} vu (proven {_vu(lo)}..{_vu(hi)})"
    else:
        head = (
            f"keep (decline {blocks}): accepting is worth {_vu(o.worth)} vu "
            f"(proven {_vu(lo)}..{_vu(hi)})"
        )
    if o.break_even_price is not None:
        a, b = o.break_even_interval
        rng = "" if a is None or b is None else f" (proven {a:.3g}..{b:.3g})"
        verb = "stops paying below" if o.decision == "accept" else "would pay from"
        head += f"; {verb} {o.break_even_price:.3g} vu/GPU-h{rng}"
    return head


# ---------------------------------------------------------------- operators' formats (issue 11)
import_app = typer.Typer(
    no_args_is_help=True, help="Import a Slurm or Kubernetes/Kueue cluster as an instance."
)
export_app = typer.Typer(
    no_args_is_help=True, help="Export a placement as Slurm commands or Kubernetes manifests."
)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")


def _write_instance(doc: dict, warns: list, out_file: Path | None) -> None:
    """Validate the imported instance, print its warnings, write YAML (or print it)."""
    import yaml

    from placer import load_instance
    from placer.formats.common import write_text_atomic

    for w in warns:
        err.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True, markup=True)
    try:
        inst = load_instance(doc)
    except PlacerError as e:
        _fail(e)
    text = yaml.safe_dump(doc, sort_keys=False, width=100)
    if out_file is None:
        sys.stdout.write(text)
        return
    write_text_atomic(out_file, text)
    n = inst.index
    out.print(
        f"wrote {out_file}: {len(inst.topology.sites)} site(s), {n.n_domains(n.n_levels - 1):,} "
        f"nodes, {n.n_gpus:,} GPUs, levels {' > '.join(inst.topology.levels)}, "
        f"{len(inst.jobs)} jobs; {len(warns)} warning(s)"
    )


@import_app.command("slurm")
def import_slurm_cmd(
    topology: list[Path] = typer.Option(
        ..., "--topology", help="topology.conf (tree or block) or topology.yaml; repeatable."
    ),
    site: list[str] = typer.Option(
        [], "--site", help="Site name per --topology, in order (default: the file's stem)."
    ),
    nodes: Path | None = typer.Option(
        None, "--nodes", help="slurm.conf with NodeName=... Gres=gpu:<type>:<n> lines."
    ),
    jobs: Path | None = typer.Option(
        None, "--jobs", help="Partial instance: jobs, leases, gpu_types."
    ),
    wan: Path | None = typer.Option(None, "--wan", help="WAN links file (list, or {wan: [...]})."),
    type_map: list[str] = typer.Option(
        [], "--type-map", help="RAW=TYPE, e.g. h100=H100; repeatable."
    ),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", help="Without --nodes: GPUs per node."),
    gpu_type: str = typer.Option("H100", "--gpu-type", help="Type for untyped Gres / no --nodes."),
    topology_name: str | None = typer.Option(
        None,
        "--topology-name",
        help="topology.yaml: which named topology (default: cluster_default).",
    ),
    name: str | None = typer.Option(None, "--name", help="Instance name (default: first site)."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the instance YAML here."),
) -> None:
    """Slurm topology.conf/topology.yaml (+ slurm.conf Gres) -> a SPEC instance."""
    from placer.formats import import_slurm

    if site and len(site) != len(topology):
        _fail(PlacerError(f"--site given {len(site)} times for {len(topology)} --topology files"))
    sites = site or [p.stem for p in topology]
    try:
        doc, warns = import_slurm(
            list(zip(topology, sites, strict=True)),
            nodes=nodes,
            jobs=jobs,
            wan=wan,
            type_map=type_map,
            gpus_per_node=gpus_per_node,
            gpu_type=gpu_type,
            name=name,
            topology_name=topology_name,
        )
    except PlacerError as e:
        _fail(e)
    _write_instance(doc, warns, out_file)


@import_app.command("kubernetes")
def import_kubernetes_cmd(
    topology: Path = typer.Option(..., "--topology", help="Kueue Topology YAML."),
    nodes: list[Path] = typer.Option(
        ..., "--nodes", help="`kubectl get nodes -o json` output; repeatable (one site each)."
    ),
    site: list[str] = typer.Option([], "--site", help="Site name per --nodes file."),
    site_label: str | None = typer.Option(
        None, "--site-label", help="Node label naming the site, e.g. topology.kubernetes.io/zone."
    ),
    jobs: Path | None = typer.Option(
        None, "--jobs", help="Partial instance: jobs, leases, gpu_types."
    ),
    wan: Path | None = typer.Option(None, "--wan", help="WAN links file."),
    type_map: list[str] = typer.Option([], "--type-map", help="RAW=TYPE; repeatable."),
    gpu_type: str = typer.Option(
        "H100", "--gpu-type", help="Type when nvidia.com/gpu.product is absent."
    ),
    name: str | None = typer.Option(None, "--name", help="Instance name."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the instance YAML here."),
) -> None:
    """Kueue Topology + node list -> a SPEC instance (Unschedulable/NotReady -> unavailable)."""
    from placer.formats import import_kubernetes

    try:
        doc, warns = import_kubernetes(
            topology,
            list(nodes),
            sites=site or None,
            site_label=site_label,
            jobs=jobs,
            wan=wan,
            type_map=type_map,
            gpu_type=gpu_type,
            name=name,
        )
    except PlacerError as e:
        _fail(e)
    _write_instance(doc, warns, out_file)


def _export_args(instance: Path, placement: Path):
    from placer import load_placement

    inst = _load(instance)
    try:
        return inst, load_placement(placement, inst)
    except PlacerError as e:
        _fail(e)


@export_app.command("slurm")
def export_slurm_cmd(
    instance: Path = typer.Argument(..., help="Instance file."),
    placement: Path = typer.Argument(..., help="Placement JSON (placer solve -o)."),
    script: str = typer.Option(
        "job.sh", "--script", help="Batch script named in the sbatch lines."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the export as JSON."),
) -> None:
    """Per job a nodelist and a ready sbatch line; per accepted lease a reservation command."""
    from placer.formats import export_slurm

    inst, pl = _export_args(instance, placement)
    try:
        with _placement_warnings():
            doc = export_slurm(inst, pl, script=script)
    except PlacerError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    for j in doc["jobs"]:
        if not j["nodes"]:
            out.print(f"# {j['name']}: not placed ({j.get('note', '')})", soft_wrap=True)
            continue
        plan = f", plan {j['plan']}" if j.get("plan") else ""
        out.print(
            f"# {j['name']}: {j['nodes']} nodes x {j['gpus_per_node']} GPUs{plan}",
            soft_wrap=True,
            markup=False,
        )
        out.print(j["sbatch"], soft_wrap=True, markup=False)
        out.print(f"#   inside: {j['srun']} ...; {j['rank_note']}", soft_wrap=True, markup=False)
        order = ", ".join(f"{r['node']}:{r['ranks']}" for r in j["rank_order"][:8])
        more = " ..." if len(j["rank_order"]) > 8 else ""
        out.print(f"#   ranks: {order}{more}", soft_wrap=True, markup=False)
        if j.get("note"):
            out.print(f"#   note: {j['note']}", soft_wrap=True, markup=False)
            err.print(f"note: {j['name']}: {j['note']}", soft_wrap=True, markup=False)
    for lease in doc["leases"]:
        out.print(f"# lease {lease['offer']}: {lease['nodes']} nodes, {lease['gpus']} GPUs")
        out.print(lease["reservation"], soft_wrap=True, markup=False)


@export_app.command("kubernetes")
def export_kubernetes_cmd(
    instance: Path = typer.Argument(..., help="Instance file."),
    placement: Path = typer.Argument(..., help="Placement JSON (placer solve -o)."),
    topology: Path | None = typer.Option(
        None, "--topology", help="Kueue Topology: adds podset-required-topology annotations."
    ),
    site_label: str | None = typer.Option(None, "--site-label", help="As given to the import."),
    namespace: str | None = typer.Option(None, "--namespace", help="metadata.namespace."),
    as_json: bool = typer.Option(False, "--json", help="JSON (default: multi-document YAML)."),
) -> None:
    """Per job a batch/v1 Job whose pod template pins the placement (nodeAffinity, Kueue)."""
    import yaml

    from placer.formats import export_kubernetes
    from placer.formats.kubernetes import level_labels

    inst, pl = _export_args(instance, placement)
    try:
        labels = level_labels(topology, site_label) if topology is not None else None
        with _placement_warnings():
            doc = export_kubernetes(inst, pl, level_labels=labels, namespace=namespace)
    except PlacerError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        return
    parts = []
    multi = len(inst.topology.sites) > 1
    for j in doc["jobs"]:
        ranks = "; ".join(
            f"pod {i} on {r['node']}"
            + (f" (site {r['site']})" if multi else "")
            + f": ranks {r['ranks']}"
            for i, r in enumerate(j["rank_order"])
        )
        plan = f" (plan {j['plan']})" if j.get("plan") else ""
        head = f"# {j['name']}{plan}: {ranks}\n"
        if j.get("note"):
            head += f"# note: {j['note']}\n"
            err.print(f"note: {j['name']}: {j['note']}", soft_wrap=True, markup=False)
        parts.append(head + yaml.safe_dump(j["manifest"], sort_keys=False))
    sys.stdout.write("---\n".join(parts))


# ------------------------------------------------------------------ live cluster (issue 10)
@app.command()
def serve(
    instance: Path = typer.Argument(..., help="Instance file (YAML or JSON)."),
    placement: Path | None = typer.Option(
        None, "--placement", help="First start: this placement (else: jobs with `current`)."
    ),
    state: str = typer.Option(
        "./placer-state.db",
        "--state",
        help="Durable state: a SQLite file (created; resumed on restart) or postgresql://URL.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface (tokens needed off loopback)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    token_file: Path | None = typer.Option(
        None, "--token-file", help="Bearer tokens, one per line ('TOKEN' or 'TOKEN read')."
    ),
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", help="Body cap (413)."),
    max_gpus: int = typer.Option(1_000_000, "--max-gpus", help="GPUs of a posted instance."),
    max_jobs: int = typer.Option(5_000, "--max-jobs", help="Jobs of a posted instance/replan."),
    max_solve_seconds: float = typer.Option(60.0, "--max-solve-seconds", help="time_limit cap."),
    solve_grace: float = typer.Option(
        30.0, "--solve-grace", help="A solve is killed at time_limit + this many seconds."
    ),
    max_concurrent: int = typer.Option(64, "--max-concurrent", help="Requests in flight (503)."),
    fabric: Path | None = typer.Option(None, "--fabric", help=FABRIC),
) -> None:
    """Serve a live cluster over HTTP/JSON (OpenAPI at /docs) with its state in SQLite or
    PostgreSQL: the same command restarts it with nothing lost (docs/scheduler.md)."""
    import os

    try:
        from placer.service import Limits, Service, is_loopback, open_store, parse_tokens
        from placer.service import serve as run
    except ImportError:
        err.print("[red]error:[/red] placer serve needs the extra: pip install 'placer[serve]'")
        raise typer.Exit(2) from None
    from placer import load_placement
    from placer.errors import UsageError

    inst = _load(instance, fabric)
    _warn(inst)
    try:
        tokens = []
        if token_file is not None:
            try:
                text = token_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError(f"--token-file {token_file}: cannot read it ({e})") from None
            tokens = parse_tokens(text, f"--token-file {token_file}")
        elif os.environ.get("PLACER_TOKENS"):
            tokens = parse_tokens(os.environ["PLACER_TOKENS"], "PLACER_TOKENS")
        if not tokens and not is_loopback(host):
            raise UsageError(
                f"--host {host}: tokens are required off loopback (--token-file or PLACER_TOKENS)"
            )
        for flag, v in (
            ("--max-body-bytes", max_body_bytes),
            ("--max-gpus", max_gpus),
            ("--max-jobs", max_jobs),
            ("--max-concurrent", max_concurrent),
        ):
            if v < 1:
                raise UsageError(f"{flag}: expected an integer >= 1, got {v}")
        if not max_solve_seconds > 0 or not solve_grace >= 0:
            raise UsageError("--max-solve-seconds must be > 0 and --solve-grace >= 0")
        limits = Limits(
            max_body_bytes, max_gpus, max_jobs, max_solve_seconds, solve_grace, max_concurrent
        )
        pl = load_placement(placement, inst) if placement is not None else None
        store = open_store(state)
        store.open()
        from placer.service.runtime import check_same_instance

        stored = store.instance_document()
        with _placement_warnings():  # a placement of another instance (used: a first start)
            svc = Service(
                inst, placement=pl if stored is None else None, store=store, limits=limits
            )
        if stored is not None:
            check_same_instance(stored, svc.instance_doc)
            if placement is not None:
                err.print(
                    f"[yellow]warning:[/yellow] --placement ignored: resuming the cluster in "
                    f"{store.describe()}"
                )
    except PlacerError as e:
        _fail(e)
    what = "resuming" if stored is not None else "new state"
    out.print(
        f"serving {inst.name} ({what}: {store.describe()}) on http://{host}:{port} "
        f"(docs at /docs; /health is 503 until the cluster is rebuilt)"
    )
    try:
        run(svc, host=host, port=port, tokens=tokens)
    except PlacerError as e:
        _fail(e)
    if svc.status == "failed":
        err.print(f"[red]error:[/red] {svc.error}")
        raise typer.Exit(1)


@app.command()
def replay(
    instance: Path = typer.Argument(..., help="Instance file (YAML or JSON)."),
    events: Path = typer.Argument(..., help="Events file {events: [...]} (YAML or JSON)."),
    policy: list[str] = typer.Option(
        [], "--policy", help="Policy: placer or a peer baseline (repeat; default placer)."
    ),
    replan_every: float | None = typer.Option(
        None, "--replan-every", help="placer policy: replan every this many hours."
    ),
    replan_time_limit: float = typer.Option(10.0, "--replan-time-limit", help="Seconds."),
    peer_time_limit: float = typer.Option(
        10.0, "--peer-time-limit", help="Seconds per peer solve."
    ),
    until: float | None = typer.Option(None, "--until", help="Hours (default: horizon_hours)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    plot: Path | None = typer.Option(None, "--plot", help="Write value/utilisation plots here."),
    snapshots: Path | None = typer.Option(
        None, "--snapshots", help="Write the snapshot after every event here (per policy)."
    ),
) -> None:
    """Replay an event trace under each policy and compare delivered value, completions,
    queueing, utilisation and moves (docs/scheduler.md)."""
    from placer.replay import load_events
    from placer.replay import replay as run

    inst = _load(instance)
    try:
        evs = load_events(events, inst)
        res = run(
            inst,
            evs,
            policy_names=policy or None,
            replan_every=replan_every,
            replan_time_limit=replan_time_limit,
            peer_time_limit=peer_time_limit,
            until=until,
            snapshots=snapshots,
        )
    except PlacerError as e:
        _fail(e)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {p: {k: v for k, v in m.items() if k != "timeline"} for p, m in res.items()},
                indent=1,
            )
            + "\n"
        )
    else:
        t = Table(title=f"replay of {len(evs)} events on {inst.name}")
        cols = [
            ("policy", "policy"),
            ("value (vu)", "value"),
            ("completed", "completed"),
            ("compl. mean h", "completion_mean_h"),
            ("compl. p95 h", "completion_p95_h"),
            ("queue mean h", "queueing_mean_h"),
            ("util.", "utilisation_mean"),
            ("moves", "moves"),
            ("stops", "stops"),
            ("never started", "never_started"),
        ]
        for name, _ in cols:
            t.add_column(name, justify="left" if name == "policy" else "right")
        for m in res.values():
            t.add_row(*[_fmt(m[k]) for _, k in cols])
        out.print(t)
    if plot is not None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            err.print("[red]error:[/red] --plot needs matplotlib: pip install 'placer[plot]'")
            raise typer.Exit(2) from None
        plot.mkdir(parents=True, exist_ok=True)
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for p, m in res.items():
            tl = m["timeline"]
            a1.plot([x[0] for x in tl], [x[1] for x in tl], label=p)
            a2.step([x[0] for x in tl], [x[2] for x in tl], where="pre", label=p)
        a1.set_ylabel("delivered value (vu)")
        a2.set_ylabel("GPU utilisation")
        a2.set_xlabel("hours")
        a1.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot / "replay.png", dpi=120)
        out.print(f"wrote {plot / 'replay.png'}")


@app.command("generate-trace")
def generate_trace_cmd(
    instance: Path = typer.Argument(..., help="Instance file (YAML or JSON)."),
    hours: float = typer.Option(72.0, "--hours", help="Length of the trace."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same trace."),
    trace: str = typer.Option("philly", "--trace", help="Source job trace (placer/data)."),
    load: float = typer.Option(0.9, "--load", help="Offered GPU-hours / available GPU-hours."),
    size_scale: int | None = typer.Option(None, "--size-scale", help="GPUs per trace GPU."),
    inference: float = typer.Option(0.2, "--inference", help="Share of inference jobs."),
    failures: int = typer.Option(0, "--failures", help="Node failures (each later restored)."),
    wan_failures: int = typer.Option(0, "--wan-failures", help="WAN-link failures."),
    repair_hours: float = typer.Option(6.0, "--repair-hours", help="Hours until a restore."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the YAML here."),
) -> None:
    """Generate a seeded event trace for an instance from a real job trace (sizes and
    durations of placer/data), for `placer replay`."""
    import yaml

    from placer.replay import generate_trace

    _check_out(out_file)
    inst = _load(instance)
    try:
        d = generate_trace(
            inst,
            hours=hours,
            seed=seed,
            trace=trace,
            load=load,
            size_scale=size_scale,
            inference_share=inference,
            failures=failures,
            repair_hours=repair_hours,
            wan_failures=wan_failures,
        )
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    text = yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=100)
    if out_file is None:
        sys.stdout.write(text)
    else:
        tmp = out_file.with_name(f".{out_file.name}.tmp")
        tmp.write_text(text)
        tmp.replace(out_file)
        out.print(f"wrote {out_file}: {len(d['events'])} events")


# ---------------------------------------------------------------- plans from a model (issue 15)
@app.command("plans")
def plans_cmd(
    file: Path = typer.Argument(..., help="Instance file whose jobs describe their model."),
    job: list[str] = typer.Option([], "--job", "-j", help="Only this job (repeatable)."),
    write: Path | None = typer.Option(
        None, "--write", "-w", help="Write the expanded SPEC v3 file here (YAML, or .json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Every figure as JSON on stdout."),
) -> None:
    """Derive the plans of jobs that describe their model (docs/plans.md): shape, memory per
    GPU type, traffic per step and the step time at the best level of each plan."""
    from placer.errors import UsageError
    from placer.io import parse_text, read_text
    from placer.planner import expand
    from placer.planner import report as R
    from placer.validate import instance_from_dict

    try:
        exp = expand(parse_text(read_text(file)))
        # the expanded file is plain SPEC v3 and must load, written or not: a file that is
        # bad input elsewhere (a job without `value`, another job's typo) is refused (exit 2)
        instance_from_dict(exp.data)
    except PlacerError as e:
        _fail(e)
    names = [j.name for j in exp.jobs]
    for n in job:
        if n not in names:
            have = ", ".join(names) or "none"
            _fail(UsageError(f"--job: no job {n!r} describes a model (those that do: {have})"))
    if write is not None:
        R.write_document(exp.data, write)
        (err if as_json else out).print(f"wrote {write}")
    shown = [j for j in exp.jobs if not job or j.name in job]
    if as_json:
        d = exp.to_dict()
        d["jobs"] = [j.to_dict() for j in shown]
        sys.stdout.write(json.dumps(d, indent=1) + "\n")
        return
    for w in exp.warnings:
        err.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)
    if not exp.jobs:
        out.print(f"no job of {file} describes a model (model:): nothing to plan")
        return
    for line in R.type_lines(exp):
        out.print(line, soft_wrap=True)
    for jp in shown:
        t = Table(title=R.title(jp))
        for c in R.headers(jp):
            # a plan name is what --job, current_plan and the placement use: fold it, never cut it
            t.add_column(c, no_wrap=c != "plan", overflow="fold" if c == "plan" else "ellipsis")
        for p in jp.plans:
            t.add_row(*R.row(jp, p))
        out.print(t)
        out.print(R.footer(jp), soft_wrap=True)


from placer.cli_calibrate import calibrate_app  # noqa: E402 (it uses the helpers above)

app.add_typer(calibrate_app, name="calibrate")


def main() -> None:
    """Console entry point."""
    try:
        app()
    except PlacerError as e:  # pragma: no cover - commands catch their own
        err.print(f"error: {e}")
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
