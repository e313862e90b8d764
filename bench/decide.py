"""Issue 9 figures: `placer decide` at full scale, side by side with its two solves, and a
20-point sweep on Ray.

1. instances/colossus-v2.yaml (180,224 GPUs), offer `frontier-lab-campus`: the two forced
   solves run one after the other in this process (the reference), then `placer.decide`
   with the local engine (2 workers) and with 1 worker; the ratio decide / two solves.
2. A 20-point `wan.bandwidth` sweep (x0.25..x16) of the same decision on the Ray engine
   (a local Ray with 2 CPUs, or RAY_ADDRESS), with the flip bisected to 5%.
Writes decide.json (bench/results/ with --record, else bench/out/).

    python -m bench.decide [--time-limit 30] [--points 20] [--no-ray] [--record]
"""

from __future__ import annotations

import time

from bench.common import ROOT, machine, parser, write


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args(argv)
    import placer
    from placer.decision import solve_side

    path = ROOT / "instances" / "colossus-v2.yaml"
    inst = placer.load_instance(path)
    offer = "frontier-lab-campus"
    data = inst.model_dump(mode="json", exclude_none=True)
    t0 = time.perf_counter()
    a = solve_side(data, offer, "accept", "cpsat", args.time_limit, 0, {})
    d = solve_side(data, offer, "decline", "cpsat", args.time_limit, 0, {})
    two = time.perf_counter() - t0
    t0 = time.perf_counter()
    r2 = placer.decide(inst, offer=offer, time_limit=args.time_limit, jobs=2)
    dec2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    r1 = placer.decide(inst, offer=offer, time_limit=args.time_limit, jobs=1)
    dec1 = time.perf_counter() - t0
    out = {
        "machine": machine(),
        "instance": "colossus-v2",
        "offer": offer,
        "time_limit": args.time_limit,
        "two_solves_s": two,
        "decide_2_workers_s": dec2,
        "decide_1_worker_s": dec1,
        "ratio_2_workers": dec2 / two,
        "ratio_1_worker": dec1 / two,
        "sides": {"accept": a, "decline": d},
        "decision": r2.to_dict()["offers"][0],
    }
    print(
        f"colossus-v2, {offer}: two solves {two:.1f} s; decide {dec2:.1f} s with 2 workers "
        f"({dec2 / two:.2f}x), {dec1:.1f} s with 1 ({dec1 / two:.2f}x); target <= 2x"
    )
    o = r1.offers[0]
    print(
        f"  decision {o.decision}, worth {o.worth / 1e6:+.1f} M vu "
        f"(proven {o.worth_interval[0] / 1e6:+.1f}..{o.worth_interval[1] / 1e6:+.1f} M), "
        f"break-even {o.break_even_price:.3g} vu/GPU-h"
    )
    if not args.no_ray:
        t0 = time.perf_counter()
        rs = placer.decide(
            inst,
            offer=offer,
            sweeps=[f"wan.bandwidth=0.25:16:{args.points}"],
            engine="ray",
            jobs=2,
            time_limit=args.time_limit,
            tolerance=0.05,
        )
        took = time.perf_counter() - t0
        s = rs.sweeps[0]
        out["ray_sweep"] = {"seconds": took, **s.to_dict()}
        flip = s.break_even
        print(
            f"ray: {args.points}-point wan.bandwidth sweep in {took:.0f} s; "
            + (
                f"flip {flip['from']} -> {flip['to']} at x{flip['factor']:.3g}"
                if flip
                else "no flip in x0.25..x16"
            )
        )
        import ray

        ray.shutdown()
    write("decide", out)


if __name__ == "__main__":
    main()
