"""`placer calibrate`: nccl, steps and apply (parse, call placer.calibrate, render).

Kept apart from :mod:`placer.cli` so that its commands stay one block; it shares that
module's consoles and error rendering, and imports the library lazily like it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from placer.cli import _fail, _fmt, _load, _warn, err, out
from placer.errors import PlacerError

calibrate_app = typer.Typer(
    no_args_is_help=True,
    help="Fit the cost model to the operator's measurements: nccl-tests logs (fabric), step "
    "times (jobs); apply an overlay.",
)


def _write(path: Path, text: str) -> None:
    from placer.formats.common import write_text_atomic

    write_text_atomic(path, text)


def _levels(items: list[str]) -> str | dict[str, str] | None:
    """--level LEVEL (every file) or --level FILE=LEVEL (repeatable)."""
    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return items[0]
    out_: dict[str, str] = {}
    for it in items:
        if "=" not in it:
            err.print(f"[red]error:[/red] --level {it}: give LEVEL once, or FILE=LEVEL per file")
            raise typer.Exit(2)
        f, lv = it.rsplit("=", 1)
        out_[f] = lv
    return out_


def _interval(iv, fmt: str) -> str:
    lo, hi = iv
    if lo != lo:  # nan
        return "-"
    hi_s = "inf" if hi == float("inf") else format(hi, fmt)
    return f"{format(lo, fmt)}..{hi_s}"


@calibrate_app.command("nccl")
def nccl_cmd(
    logs: list[Path] = typer.Argument(..., help="nccl-tests logs (text, any version) or -J JSON."),
    instance: Path = typer.Option(..., "--instance", "-i", help="The cluster's instance file."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the overlay (YAML)."),
    level: list[str] = typer.Option(
        [],
        "--level",
        help="LEVEL for every log, or FILE=LEVEL (repeatable): overrides the "
        "level found from the hostnames.",
    ),
    hosts: Path | None = typer.Option(
        None,
        "--hosts",
        help="YAML/JSON map hostname -> node path, for nodes not named after their hosts.",
    ),
    split: str | None = typer.Option(
        None, "--split", help='NCCL_TESTS_SPLIT of logs without a Group column, e.g. "MOD 8".'
    ),
    collective: str | None = typer.Option(
        None,
        "--collective",
        help="all_reduce | all_gather | reduce_scatter | alltoall | "
        "sendrecv, when neither log nor file name tells it.",
    ),
    per_site: bool = typer.Option(False, "--per-site", help="Fit each site separately."),
    plot_file: Path | None = typer.Option(None, "--plot", help="Write the fit plot (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="The calibration as JSON on stdout."),
) -> None:
    """Fit SPEC 4's latency_us and bandwidth_GBps per level (and site) to nccl-tests logs;
    write them as a fabric overlay for --fabric / `calibrate apply`."""
    from placer.calibrate import nccl
    from placer.calibrate.overlay import read_hosts

    inst = _load(instance)
    try:
        host_map = read_hosts(hosts) if hosts is not None else None
        cal = nccl(
            inst,
            list(logs),
            level=_levels(level),
            hosts=host_map,
            split=split,
            collective=collective,
            per_site=per_site,
        )
        if plot_file is not None:
            cal.plot(plot_file)
    except PlacerError as e:
        _fail(e)
    if out_file is not None:
        _write(out_file, cal.overlay_yaml())
    if as_json:
        sys.stdout.write(json.dumps(cal.to_dict(), indent=1) + "\n")
        return
    _warn(inst)
    t = Table(title=f"{inst.name}: runs")
    for c in ("log", "collective", "ranks", "groups", "level", "site", "samples", "note"):
        t.add_column(c)
    for r in cal.runs:
        t.add_row(
            r.where,
            f"{r.collective} ({r.collective_from})",
            str(r.n),
            str(r.groups),
            r.level or "-",
            r.site or "-",
            str(r.samples),
            r.note,
        )
    out.print(t)
    t = Table(
        title=f"{inst.name}: fitted fabric ({int(cal.fits[0].confidence * 100)}% intervals)"
        if cal.fits
        else "fitted fabric"
    )
    for c in (
        "level",
        "site",
        "latency us",
        "interval",
        "bandwidth GB/s",
        "interval",
        "points",
        "dropped",
        "median |resid|",
        "was",
    ):
        t.add_column(c, justify="left" if c in ("level", "site") else "right")
    for f in cal.fits:
        b = cal.before.get((f.level, f.site))
        t.add_row(
            f.level,
            f.site or "(all)",
            _fmt(f.latency_us),
            _interval(f.latency_interval, ".3g"),
            _fmt(f.bandwidth_GBps),
            _interval(f.bandwidth_interval, ".4g"),
            str(len(f.used)),
            str(len(f.dropped)),
            f"{f.median_abs_residual:.1%}",
            f"{b[0]:g} us / {b[1]:g} GB/s" if b else "-",
        )
    out.print(t)
    for f in cal.fits:
        if f.note:
            out.print(f"[yellow]note:[/yellow] {f.level} {f.site or ''}: {f.note}", soft_wrap=True)
        for p, why in f.dropped:
            out.print(
                f"dropped {p.where} {int(p.bytes):,} B "
                f"({'in-place' if p.in_place else 'out-of-place'}): {why}",
                soft_wrap=True,
            )
    if out_file is not None:
        out.print(f"wrote {out_file}")
    else:
        sys.stdout.write(cal.overlay_yaml())
    if plot_file is not None:
        out.print(f"wrote {plot_file}")


@calibrate_app.command("steps")
def steps_cmd(
    measured: Path = typer.Argument(..., help="CSV: job, gpus (ids) or nodes (list), step_ms."),
    instance: Path = typer.Option(..., "--instance", "-i", help="The cluster's instance file."),
    fabric: Path | None = typer.Option(None, "--fabric", help="Apply a fabric overlay first."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the jobs overlay."),
    k: int = typer.Option(5, "--folds", "-k", help="Cross-validation folds (>= 2)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds."),
    fit: str = typer.Option(
        "compute,overlap,messages", "--fit", help="Parameters to fit (comma-separated)."
    ),
    messages_max: float = typer.Option(4096.0, "--messages-max", help="Upper bound of X_messages."),
    hosts: Path | None = typer.Option(None, "--hosts", help="Map hostname -> node path."),
    as_json: bool = typer.Option(False, "--json", help="The calibration as JSON on stdout."),
) -> None:
    """Fit jobs' compute_ms, overlap and X_messages to measured step times, and report the
    k-fold hold-out error (median |error|, Spearman, order of equal-size placements)."""
    from placer.calibrate import steps
    from placer.calibrate.overlay import read_hosts

    inst = _load(instance, fabric)
    try:
        host_map = read_hosts(hosts) if hosts is not None else None
        cal = steps(
            inst,
            measured,
            k=k,
            seed=seed,
            fit=tuple(x.strip() for x in fit.split(",") if x.strip()),
            messages=(1.0, messages_max),
            hosts=host_map,
        )
    except PlacerError as e:
        _fail(e)
    if out_file is not None:
        _write(out_file, cal.overlay_yaml())
    if as_json:
        sys.stdout.write(json.dumps(cal.to_dict(), indent=1) + "\n")
        return
    _warn(inst)
    t = Table(title=f"{inst.name}: jobs fitted to {measured.name} ({k}-fold hold-out)")
    for c in (
        "job",
        "rows",
        "placements",
        "compute ms",
        "overlap",
        "messages",
        "held-out |err|",
        "Spearman",
        "pair order",
        "fit |err|",
    ):
        t.add_column(c, justify="left" if c == "job" else "right")
    for j in cal.jobs:
        po = f"{j.pairs_agree / j.pairs:.2f} ({j.pairs})" if j.pairs else "-"
        t.add_row(
            j.job,
            str(j.rows),
            str(j.placements),
            _fmt(j.fit.compute_ms),
            " ".join(f"{d} {v:.2f}" for d, v in j.fit.overlap.items()) or "-",
            " ".join(f"{d} {v:.3g}" for d, v in j.fit.messages.items()) or "-",
            f"{j.mdape:.1%}",
            _fmt(j.spearman),
            po,
            f"{j.train_mdape:.1%}",
        )
    out.print(t)
    s = cal.summary()
    pair = f"{s['heldout_pair_order']:.2f}" if s["heldout_pair_order"] is not None else "-"
    out.print(
        f"held out: median |error| {s['heldout_mdape']:.1%}, Spearman "
        f"{_fmt(s['heldout_spearman_median_over_jobs'])} (median over jobs; pooled "
        f"{_fmt(s['heldout_spearman_pooled'])}), order of equal-size placements {pair} "
        f"({s['pairs']} pairs), {s['rows']} rows"
    )
    for j in cal.jobs:
        if j.note:
            out.print(f"[yellow]note:[/yellow] {j.job}: {j.note}")
    if out_file is not None:
        out.print(f"wrote {out_file}")


@calibrate_app.command("apply")
def apply_cmd(
    instance: Path = typer.Argument(..., help="Instance file."),
    overlay: Path = typer.Argument(..., help="Overlay from `calibrate nccl|steps -o`."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write here (else stdout)."),
) -> None:
    """Write the calibrated instance: the overlay's values merged in, validated."""
    import yaml

    from placer.calibrate import apply
    from placer.validate import instance_from_dict

    try:
        doc = apply(instance, overlay)
        inst = instance_from_dict(doc)
    except PlacerError as e:
        _fail(e)
    text = yaml.safe_dump(doc, sort_keys=False, width=100)
    if out_file is None:
        sys.stdout.write(text)
        return
    _write(out_file, text)
    _warn(inst)
    out.print(f"wrote {out_file}: {inst.name} with {overlay} applied")
