"""The lease study of the bundled colossus instances: a thin caller of `placer.decide`.

For instances/colossus.yaml and instances/colossus-v2.yaml, the campus offer
`frontier-lab-campus` is decided (forced accept and forced decline), and its break-even is
swept over the price, the WAN's latency and bandwidth, and (v2) the frontier run's outer
synchronisation. Writes study_colossus.json and, with matplotlib, img/study-*.png (the plots
of `placer decide --plot`): to bench/results/ and docs/ with --record, else to bench/out/.

    python -m bench.study_colossus [--quick] [--engine local|ray] [--record]
"""

from __future__ import annotations

from bench.common import ROOT, docs_dir, machine, parser, write


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 points per sweep, 10 s solves")
    ap.add_argument("--engine", default="local")
    args = ap.parse_args(argv)
    import placer
    from placer.decision import plot

    n, limit = (3, 10.0) if args.quick else (7, 30.0)
    cases = {
        "colossus": ["price=0.5:2", "wan.latency=0.25:64", "wan.bandwidth=0.25:16"],
        "colossus-v2": [
            "price=0.5:2",
            "wan.latency=0.25:64",
            "wan.bandwidth=0.25:16",
            "jobs.frontier-pretrain.cross_site_every=1:100",
        ],
    }
    out = {"machine": machine(), "time_limit": limit, "points": n, "studies": {}}
    for name, sweeps in cases.items():
        inst = placer.load_instance(ROOT / "instances" / f"{name}.yaml")
        res = placer.decide(
            inst,
            offer="frontier-lab-campus",
            sweeps=[f"{s}:{n}" for s in sweeps],
            engine=args.engine,
            jobs=2,
            time_limit=limit,
        )
        out["studies"][name] = res.to_dict()
        o = res.offers[0]
        print(
            f"{name}: {o.decision}, worth {o.worth / 1e6:+.1f} M vu "
            f"(proven {o.worth_interval[0] / 1e6:+.1f}..{o.worth_interval[1] / 1e6:+.1f} M); "
            f"break-even {o.break_even_price:.3g} vu/GPU-h"
        )
        for s in res.sweeps:
            b = s.break_even
            print(f"  {s.param}: " + (f"flips at x{b['factor']:.3g}" if b else "no flip"))
        try:
            plot(res, str(docs_dir() / "img" / f"study-{name}"))
        except placer.UsageError:
            pass
    write("study_colossus" + ("-quick" if args.quick else ""), out)


if __name__ == "__main__":
    main()
