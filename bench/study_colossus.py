"""The seed scenario as a study: when does leasing a whole campus stop paying?

Two scenarios: `colossus` (instances/colossus.yaml: the frontier lab's offer for all of
colossus-1) and `frontier` (the generated two-campus family, seed 0, 2 x 16,384 H100: an
offer for all of campus-b while a 405B pretraining job may span both campuses over the WAN).
For each setting (WAN latency x, WAN bandwidth x, the flagship's cross_site_every, the
campus offer's price), two solves with cpsat:
  - leased:   the campus offer committed (`committed_blocks: [colossus-1]`),
  - declined: the campus offer removed.
The lease's worth is leased - declined (vu over the horizon). Revenue is linear in the price
and the leased solve's job placement does not depend on it, so the break-even price at each
setting is  p0 - (leased - declined) / (horizon_hours * leased GPUs).  Both solves carry
proven bounds; the worth is certain to lie in [leased - declined_bound, leased_bound - declined].

    python -m bench.study_colossus [--quick]

Writes bench/results/study_colossus.json and, with matplotlib, docs/img/study-*.png.
"""

from __future__ import annotations

import argparse
import copy
import time

from bench.common import ROOT, machine, write

SCENARIOS = {
    "colossus": {
        "offer": "frontier-lab-campus",
        "block": "colossus-1",
        "flagship": "flagship-pretrain",
    },
    "frontier": {"offer": "campus-tenant-0", "block": "campus-b", "flagship": "flagship-405b-0"},
}
OFFER = "frontier-lab-campus"
BLOCK = "colossus-1"
FLAGSHIP = "flagship-pretrain"


def load_base(name: str) -> dict:
    from placer.generators import generate
    from placer.io import parse_text, read_text

    if name == "colossus":
        return parse_text(read_text(ROOT / "instances" / "colossus.yaml"))
    return generate("frontier", seed=0, sites=2, gpus_per_site=16384, n_jobs=6)


def variant(base: dict, wan_lat=1.0, wan_bw=1.0, cse=None, price=None, mode="free") -> dict:
    d = copy.deepcopy(base)
    for w in d["topology"]["wan"]:
        w["latency_us"] = w["latency_us"] * wan_lat
        w["bandwidth_GBps"] = w["bandwidth_GBps"] * wan_bw
    if cse is not None:
        for j in d["jobs"]:
            if j["name"] == FLAGSHIP:
                j["cross_site_every"] = cse
    offers = d["leases"]["offers"]
    for o in offers:
        if o["name"] == OFFER and price is not None:
            o["price_per_gpu_hour"] = price
    if mode == "declined":
        d["leases"]["offers"] = [o for o in offers if o["name"] != OFFER]
    elif mode == "leased":
        for o in offers:
            if o["name"] == OFFER:
                o["committed_blocks"] = [BLOCK]
    return d


def solve(d: dict, limit: float) -> dict:
    import placer
    from placer.validate import instance_from_dict

    inst = instance_from_dict(d)
    t = time.perf_counter()
    r = placer.solve(inst, solver="cpsat", time_limit=limit, seed=0)
    out = {
        "status": r.status,
        "objective": r.objective,
        "bound": r.bound,
        "seconds": time.perf_counter() - t,
    }
    if r.score is not None:
        out["leased_gpus"] = sum(o["gpus"] for o in r.score.offers if o["offer"] == OFFER)
        out["accepted"] = out["leased_gpus"] > 0
        fl = next(j for j in r.score.jobs if j["name"] == FLAGSHIP)
        out["flagship_units"] = fl["units"]
        out["flagship_goodput"] = fl["goodput"]
    return out


def point(base: dict, limit: float, **kw) -> dict:
    leased = solve(variant(base, mode="leased", **kw), limit)
    declined = solve(variant(base, mode="declined", **kw), limit)
    free = solve(variant(base, mode="free", **kw), limit)
    price = kw.get("price") or next(
        o["price_per_gpu_hour"] for o in base["leases"]["offers"] if o["name"] == OFFER
    )
    row = {**kw, "price_used": price, "leased": leased, "declined": declined, "free_choice": free}
    if leased["objective"] is not None and declined["objective"] is not None:
        worth = leased["objective"] - declined["objective"]
        row["lease_worth"] = worth
        row["worth_low"] = leased["objective"] - (declined["bound"] or declined["objective"])
        row["worth_high"] = (leased["bound"] or leased["objective"]) - declined["objective"]
        H = base.get("horizon_hours", 720)
        row["break_even_price"] = price - worth / (H * leased["leased_gpus"])
    return row


def main(argv=None) -> None:
    global OFFER, BLOCK, FLAGSHIP
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    args = ap.parse_args(argv)
    out = {"machine": machine(), "time_limit": args.time_limit, "scenarios": {}}
    for scen in args.scenario or sorted(SCENARIOS):
        cfg = SCENARIOS[scen]
        OFFER, BLOCK, FLAGSHIP = cfg["offer"], cfg["block"], cfg["flagship"]
        base = load_base(scen)
        p0 = next(o["price_per_gpu_hour"] for o in base["leases"]["offers"] if o["name"] == OFFER)
        sweeps = {
            "wan_lat": [0.25, 1, 4, 16, 64] if not args.quick else [1, 16],
            "wan_bw": [0.25, 0.5, 1, 2, 4] if not args.quick else [1],
            "cse": [1, 10, 100, 1000] if not args.quick else [100],
            "price": [round(p0 * f, 3) for f in (0.8, 0.9, 1.0, 1.1, 1.2)]
            if not args.quick
            else [p0],
        }
        res = {"offer": OFFER, "block": BLOCK, "flagship": FLAGSHIP, "price": p0, "sweeps": {}}
        for name, values in sweeps.items():
            rows = []
            for v in values:
                r = point(base, args.time_limit, **{name: v})
                rows.append(r)
                be = r.get("break_even_price")
                print(
                    f"{scen} {name}={v}: lease worth {r.get('lease_worth', float('nan')):,.0f}"
                    f" vu [{r.get('worth_low', float('nan')):,.0f}, "
                    f"{r.get('worth_high', float('nan')):,.0f}], break-even price "
                    f"{'-' if be is None else f'{be:.3f}'} vu/GPU-h; solver leases: "
                    f"{r['free_choice'].get('accepted')}; flagship units leased/declined "
                    f"{r['leased'].get('flagship_units')}/"
                    f"{r['declined'].get('flagship_units')}",
                    flush=True,
                )
            res["sweeps"][name] = rows
        out["scenarios"][scen] = res
    write("study_colossus" + ("-quick" if args.quick else ""), out)
    plot(out)


def plot(out: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    img = ROOT / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    labels = {
        "wan_lat": "WAN latency x",
        "wan_bw": "WAN bandwidth x",
        "cse": "flagship cross_site_every",
        "price": "offered price vu/GPU-h",
    }
    for scen, res in out["scenarios"].items():
        sw = {k: v for k, v in res["sweeps"].items() if len(v) > 1}
        if not sw:
            continue
        fig, axes = plt.subplots(1, len(sw), figsize=(4 * len(sw), 3.4))
        axes = [axes] if len(sw) == 1 else axes
        for ax, (name, rows) in zip(axes, sw.items()):
            ok = [r for r in rows if "break_even_price" in r]
            xs = [r[name] for r in ok]
            ax.plot(xs, [r["break_even_price"] for r in ok], "o-", label="break-even price")
            ax.plot(xs, [r["price_used"] for r in ok], "k--", lw=0.8, label="offered price")
            if name in ("wan_lat", "wan_bw", "cse"):
                ax.set_xscale("log")
            ax.set_xlabel(labels[name])
            ax.set_ylabel("vu / GPU-hour")
            ax.legend(fontsize=7)
        fig.suptitle(f"{scen}: leasing {res['block']} pays above the break-even line")
        fig.tight_layout()
        fig.savefig(img / f"study-break-even-{scen}.png", dpi=120)
        plt.close(fig)
        print(f"wrote {img / f'study-break-even-{scen}.png'}")


if __name__ == "__main__":
    main()
