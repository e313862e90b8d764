"""A per-site utilisation picture of one placement: colossus solved by placer (cpsat) and by
a peer baseline, GPUs per site used by training / inference, leased, idle, unavailable.

    python -m bench.picture [--peer volcano] [--record]  # docs/img/utilisation-colossus.png
"""

from __future__ import annotations

import numpy as np

from bench.common import ROOT, docs_dir, parser


def per_site(inst, res) -> dict[str, np.ndarray]:
    ix = inst.index
    S = ix.n_sites
    out = {k: np.zeros(S) for k in ("training", "inference", "leased", "idle", "unavailable")}
    used = np.zeros(ix.n_gpus, bool)
    for pj in res.placement.jobs:
        g = ix.gpu_indices(pj.gpus)
        used[g] = True
        out[inst.job(pj.name).kind] += np.bincount(ix.dom[0][g], minlength=S)
    leased = np.zeros(ix.n_gpus, bool)
    for lg in res.placement.leases:
        for path in lg.blocks:
            a, b = ix.gpu_range(*ix.resolve(path))
            leased[a:b] = True
    leased &= ix.available
    out["leased"] = np.bincount(ix.dom[0][leased], minlength=S).astype(float)
    out["unavailable"] = np.bincount(ix.dom[0][~ix.available], minlength=S).astype(float)
    idle = ix.available & ~used & ~leased
    out["idle"] = np.bincount(ix.dom[0][idle], minlength=S).astype(float)
    return out


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--peer", default="volcano")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import placer

    inst = placer.load_instance(ROOT / "instances" / "colossus.yaml")
    runs = {
        "placer (cpsat)": placer.solve(inst, solver="cpsat", time_limit=60),
        f"{args.peer} (best policy)": placer.solve(inst, solver=args.peer),
    }
    colors = {
        "training": "#3465a4",
        "inference": "#73d216",
        "leased": "#f57900",
        "idle": "#d3d7cf",
        "unavailable": "#2e3436",
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (title, res) in zip(axes, runs.items()):
        data = per_site(inst, res)
        x = np.arange(inst.index.n_sites)
        bottom = np.zeros(len(x))
        for k, c in colors.items():
            ax.bar(x, data[k] / 1000, bottom=bottom / 1000, color=c, label=k)
            bottom += data[k]
        ax.set_xticks(x, inst.index.site_names)
        ax.set_title(f"{title}: {res.objective / 1e6:,.1f} M vu")
        ax.set_ylabel("GPUs (thousands)")
    axes[0].legend(fontsize=8)
    fig.suptitle("colossus: GPUs per site by use")
    fig.tight_layout()
    out = docs_dir() / "img" / "utilisation-colossus.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")
    for title, res in runs.items():
        d = per_site(inst, res)
        print(title, {k: [int(v) for v in vals] for k, vals in d.items()})


if __name__ == "__main__":
    main()
