"""Analysis of a suite's rows: rich tables on the terminal, a markdown report and plots.

    python -m bench --analyse full [--record]

Writes benchmarks-report-<suite>.md (generated; the hand-written summary is
docs/benchmarks.md) and, when matplotlib is installed (`pip install -e '.[plot]'`), PNG plots
in img/: under docs/ with --record (from the rows of bench/results/), else under
bench/out/docs/ (from the rows of bench/out/).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

from rich.console import Console
from rich.table import Table

from bench.common import docs_dir, machine, recording, results_dir
from bench.suites import PEERS
from placer.solvers import names

PLACER_MAIN = "cpsat"
EXACT = names(exact=True)  # backends with a proven bound


def load(suite: str) -> list[dict]:
    rows = {}
    path = results_dir() / f"{suite}.jsonl"
    if not path.exists():
        where = "--record " if recording() else ""
        raise SystemExit(
            f"no rows at {path}: run `python -m bench --suite {suite} {where}`first"
            + ("" if recording() else " (or analyse the record with --record)")
        )
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows[json.dumps([r["name"], r["solver"], r["seed"], r["time_limit"]])] = r
    return list(rows.values())


def family(name: str) -> str:
    return name.rsplit("-s", 1)[0] if name.rsplit("-s", 1)[-1].isdigit() else name


def comparison(rows: list[dict]) -> list[dict]:
    """Per instance: placer (cpsat, its largest time limit) against the best peer."""
    by = defaultdict(dict)
    for r in rows:
        if r.get("objective") is None:
            continue
        cur = by[r["name"]].get(r["solver"])
        if cur is None or r["time_limit"] > cur["time_limit"]:
            by[r["name"]][r["solver"]] = r
    out = []
    for name, sol in sorted(by.items()):
        p = sol.get(PLACER_MAIN)
        peers = [sol[s] for s in PEERS if s in sol]
        if p is None or not peers:
            continue
        best = max(peers, key=lambda r: r["objective"])
        out.append(
            {
                "name": name,
                "family": family(name),
                "gpus": p.get("gpus"),
                "placer": p,
                "best_peer": best,
                "greedy": sol.get("greedy"),
                "mip": sol.get("mip"),
                "ratio": p["objective"] / best["objective"] if best["objective"] else None,
            }
        )
    return out


def gap_text(r: dict) -> str:
    return "-" if r.get("gap") is None else f"{100 * r['gap']:.2f}%"


def fmt(x, d=0):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{d}f}"
    return f"{x:,}"


def analyse(suite: str) -> None:
    rows = load(suite)
    con = Console(width=160)
    comp = comparison(rows)
    t = Table(title=f"placer ({PLACER_MAIN}) against the best peer, suite {suite}")
    for c in (
        "instance",
        "GPUs",
        "placer score",
        "best peer",
        "ratio",
        "job value",
        "peer",
        "lease rev.",
        "peer",
        "goodput",
        "peer",
        "idle GPUs",
        "peer",
        "x-site grp",
        "peer",
        "placer s",
        "gap",
    ):
        t.add_column(c, justify="left" if c in ("instance", "best peer") else "right")
    for c in comp:
        p, b = c["placer"], c["best_peer"]
        t.add_row(
            c["name"],
            fmt(c["gpus"]),
            fmt(p["objective"]),
            b["solver"],
            f"{c['ratio']:.3f}",
            fmt(p.get("job_value")),
            fmt(b.get("job_value")),
            fmt(p.get("lease_revenue")),
            fmt(b.get("lease_revenue")),
            fmt(p.get("mean_goodput"), 3),
            fmt(b.get("mean_goodput"), 3),
            fmt(p.get("gpus_idle")),
            fmt(b.get("gpus_idle")),
            fmt(p.get("cross_site_groups")),
            fmt(b.get("cross_site_groups")),
            fmt(p.get("seconds"), 1),
            "-" if p.get("gap") is None else f"{100 * p['gap']:.2f}%",
        )
    con.print(t)
    fam = defaultdict(list)
    for c in comp:
        fam[c["family"]].append(c["ratio"])
    ft = Table(title="per family: geometric mean of placer / best peer")
    for c in ("family", "instances", "mean ratio", "min", "max"):
        ft.add_column(c)
    fam_rows = []
    for f, rs in sorted(fam.items()):
        g = math.exp(sum(math.log(x) for x in rs) / len(rs))
        fam_rows.append((f, len(rs), g, min(rs), max(rs)))
        ft.add_row(f, str(len(rs)), f"{g:.3f}", f"{min(rs):.3f}", f"{max(rs):.3f}")
    con.print(ft)
    # gaps of the exact backends
    gt = Table(title="exact backends: proven gap and time")
    for c in ("instance", "GPUs", "solver", "limit s", "time s", "gap", "status", "peak MiB"):
        gt.add_column(c)
    gap_rows = sorted(
        (r for r in rows if r["solver"] in EXACT),
        key=lambda r: (r.get("gpus") or 0, r["name"], r["solver"], r["time_limit"]),
    )
    within = defaultdict(lambda: [0, 0])
    for r in gap_rows:
        gp = r.get("gap")
        cls = "<= 10k" if (r.get("gpus") or 0) <= 10_240 else "> 10k"
        within[(r["solver"], cls)][1] += 1
        if gp is not None and gp <= 0.01:
            within[(r["solver"], cls)][0] += 1
        gt.add_row(
            r["name"],
            fmt(r.get("gpus")),
            r["solver"],
            str(r["time_limit"]),
            fmt(r.get("seconds"), 1),
            "-" if gp is None else f"{100 * gp:.2f}%",
            r.get("status", "?"),
            fmt(r.get("peak_rss_MiB"), 0),
        )
    con.print(gt)
    for (s, cls), (a, n) in sorted(within.items()):
        con.print(f"{s} on {cls} GPUs: {a}/{n} instances within 1% (proven)")
    write_report(suite, rows, comp, fam_rows, gap_rows, within)
    plots(suite, rows, comp)


def write_report(suite, rows, comp, fam_rows, gap_rows, within) -> None:
    m = machine()
    ran = sorted({f"placer {r.get('version', '?')} at {r.get('commit', '?')}" for r in rows})
    dates = sorted({r["date"] for r in rows if r.get("date")})
    when = f", run {dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "") if dates else ""
    lines = [
        f"# Benchmark report: suite `{suite}` (generated by "
        f"`python -m bench --suite {suite} --fresh --record`)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_GiB']} GiB; Python "
        f"{m['python']}, numpy {m['numpy']}; rows from {', '.join(ran)}{when}; "
        f"analysed {m['date']}. Every row is one run in its own process, one thread; "
        "all scores are the same kernel's, all placements passed the same checker.",
        "",
        "## placer against the best peer (per instance)",
        "",
        "| instance | GPUs | placer (cpsat) | best peer | ratio | job value placer / peer |"
        " lease revenue placer / peer | mean goodput placer / peer | idle GPUs placer / "
        "peer | cross-site groups placer / peer | placer s | gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comp:
        p, b = c["placer"], c["best_peer"]
        lines.append(
            f"| {c['name']} | {fmt(c['gpus'])} | {fmt(p['objective'])} | {b['solver']} "
            f"{fmt(b['objective'])} | {c['ratio']:.3f} | {fmt(p.get('job_value'))} / "
            f"{fmt(b.get('job_value'))} | {fmt(p.get('lease_revenue'))} / "
            f"{fmt(b.get('lease_revenue'))} | {fmt(p.get('mean_goodput'), 3)} / "
            f"{fmt(b.get('mean_goodput'), 3)} | {fmt(p.get('gpus_idle'))} / "
            f"{fmt(b.get('gpus_idle'))} | {fmt(p.get('cross_site_groups'))} / "
            f"{fmt(b.get('cross_site_groups'))} | {fmt(p.get('seconds'), 1)} | "
            f"{gap_text(p)} |"
        )
    lines += [
        "",
        "## Per family (geometric mean of placer / best peer)",
        "",
        "| family | instances | mean | min | max |",
        "|---|---|---|---|---|",
    ]
    for f, n, g, lo, hi in fam_rows:
        lines.append(f"| {f} | {n} | {g:.3f} | {lo:.3f} | {hi:.3f} |")
    lines += [
        "",
        "## Exact backends: proven gap, time, memory",
        "",
        "| instance | GPUs | solver | limit s | time s | gap | status | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in gap_rows:
        gp = r.get("gap")
        lines.append(
            f"| {r['name']} | {fmt(r.get('gpus'))} | {r['solver']} | "
            f"{r['time_limit']} | {fmt(r.get('seconds'), 1)} | "
            f"{'-' if gp is None else f'{100 * gp:.2f}%'} | {r.get('status')} | "
            f"{fmt(r.get('peak_rss_MiB'), 0)} |"
        )
    lines += [""]
    for (s, cls), (a, n) in sorted(within.items()):
        lines.append(f"- {s} on instances of {cls} GPUs: {a}/{n} within 1% (proven gap)")
    errors = [r for r in rows if r.get("status") == "error"]
    lines += ["", f"Runs: {len(rows)}; errors: {len(errors)}."]
    for r in errors:
        lines.append(f"- error: {r['name']} {r['solver']}: {str(r.get('error'))[:200]}")
    out = docs_dir() / f"benchmarks-report-{suite}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def plots(suite, rows, comp) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install -e '.[plot]')")
        return
    img = docs_dir() / "img"
    img.mkdir(parents=True, exist_ok=True)
    # score vs peers
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [c["name"] for c in comp]
    ax.bar(range(len(comp)), [c["ratio"] for c in comp], color="#3465a4")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(comp)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("placer score / best peer")
    ax.set_title(f"placer (cpsat) against the best of 8 peer baselines, suite {suite}")
    fig.tight_layout()
    fig.savefig(img / f"score-vs-peers-{suite}.png", dpi=120)
    plt.close(fig)
    # scaling
    sc = [r for r in rows if r["name"].startswith("scale-") and r.get("seconds")]
    if sc:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
        for i, s in enumerate(sorted({r["solver"] for r in sc})):
            pts = sorted(
                (r["gpus"], r["seconds"], r.get("peak_rss_MiB", 0)) for r in sc if r["solver"] == s
            )
            style = dict(color=plt.cm.tab20(i), marker="os^D"[i % 4], label=s)
            ax[0].loglog([p[0] for p in pts], [p[1] for p in pts], "-", **style)
            ax[1].loglog([p[0] for p in pts], [p[2] for p in pts], "-", **style)
        ax[0].set_xlabel("GPUs (jobs grow with them)")
        ax[0].set_ylabel("solve seconds")
        ax[1].set_xlabel("GPUs")
        ax[1].set_ylabel("peak RSS MiB")
        ax[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(img / f"scaling-{suite}.png", dpi=120)
        plt.close(fig)
    # gap vs time on colossus
    col = sorted(
        (
            r
            for r in rows
            if r["name"] == "colossus" and r["solver"] == "cpsat" and r.get("gap") is not None
        ),
        key=lambda r: r["time_limit"],
    )
    if col:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([r["time_limit"] for r in col], [100 * r["gap"] for r in col], "o-")
        ax.set_xlabel("time limit s")
        ax.set_ylabel("proven gap %")
        ax.set_title("colossus: gap against time (cpsat)")
        fig.tight_layout()
        fig.savefig(img / f"gap-vs-time-{suite}.png", dpi=120)
        plt.close(fig)
