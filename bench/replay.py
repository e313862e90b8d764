"""Issue 10 replay comparison: the same held-out event trace under placer and every peer
baseline, in one run.

Instance: ``generate("multicampus", seed=3)`` (3 sites, 49,152 GPUs, WAN links). Trace:
``generate_trace(instance, hours=24, seed=11, trace="philly", load=--load, size_scale=512,
failures=3, wan_failures=1)`` (seed 11 is used by no test: held out). Policies: ``placer``
(submit per arrival, replan every ``--replan-every`` hours) and every registered peer (its
backend places the queue on the live instance with running jobs pinned). Writes
replay.json (bench/results/ with --record, else bench/out/).

    python -m bench.replay [--load 3] [--replan-every 6] [--peer-time-limit 5] [--record]
"""

from __future__ import annotations

import time

from bench.common import machine, parser, write


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--load", type=float, default=3.0)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--replan-every", type=float, default=6.0)
    ap.add_argument("--replan-time-limit", type=float, default=10.0)
    ap.add_argument("--peer-time-limit", type=float, default=5.0)
    ap.add_argument("--policies", nargs="*", default=None)
    args = ap.parse_args(argv)
    import placer
    from placer.generators import generate
    from placer.replay import generate_trace, load_events, policies, replay

    inst = placer.load_instance(generate("multicampus", seed=3))
    trace = generate_trace(
        inst,
        hours=args.hours,
        seed=11,
        trace="philly",
        load=args.load,
        size_scale=512,
        failures=3,
        wan_failures=1,
    )
    events = load_events(trace)
    rows = {}
    for p in args.policies or policies():
        t0 = time.perf_counter()
        m = replay(
            inst,
            events,
            policy_names=[p],
            replan_every=args.replan_every,
            replan_time_limit=args.replan_time_limit,
            peer_time_limit=args.peer_time_limit,
            until=args.hours,
        )[p]
        m["wall_s"] = time.perf_counter() - t0
        m.pop("timeline")
        rows[p] = m
        print(
            f"{p:16s} value {m['value']:14,.0f} vu  completed {m['completed']:4d}  "
            f"compl. mean {m['completion_mean_h'] or 0:6.2f} h  "
            f"queue {m['queueing_mean_h'] or 0:6.2f} h  "
            f"util {m['utilisation_mean']:.3f}  moves {m['moves']}  stops {m['stops']}  "
            f"({m['wall_s']:.0f} s)"
        )
    best_peer = max((m["value"], p) for p, m in rows.items() if p != "placer")
    summary = {
        "instance": inst.name,
        "gpus": inst.index.n_gpus,
        "events": len(events),
        "submits": sum(e.kind == "submit" for e in events),
        "placer_value": rows["placer"]["value"] if "placer" in rows else None,
        "best_peer": best_peer[1],
        "best_peer_value": best_peer[0],
        "placer_over_best_peer": (
            rows["placer"]["value"] / best_peer[0] if "placer" in rows and best_peer[0] else None
        ),
    }
    print(summary)
    write(
        "replay", {"machine": machine(), "args": vars(args), "summary": summary, "policies": rows}
    )


if __name__ == "__main__":
    main()
