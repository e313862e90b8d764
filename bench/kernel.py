"""Issue 3 figures: the kernel against the slow reference, side by side in one run.

1. Full score of instances/colossus.yaml with every GPU in use or leased (a synthetic
   placement: colossus-1 leased whole to the campus offer, every GPU of the other sites
   given to jobs in tree order, TP innermost) and of the cpsat solution.
2. Batch score of 10,000 candidate placements of one 1,024-GPU job.
3. The reference (tests/reference.py, plain loops that read like SPEC) on the same inputs:
   the full placement once, and a sample of the candidates (per-candidate time).
Single-threaded numpy (OPENBLAS/OMP threads = 1). Writes kernel.json (bench/results/ with
--record, else bench/out/).

    python -m bench.kernel [--quick] [--record]
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench.common import ROOT, best_of, load_reference, machine, parser, write  # noqa: E402


def full_placement(inst):
    """Every GPU used or leased (see the module docstring)."""
    ix = inst.index
    job_gpus = [np.zeros(0, np.int64) for _ in inst.jobs]
    offer_blocks = [[] for _ in inst.offers]
    c1 = ix.site_index["colossus-1"]
    o = next(
        i
        for i, off in enumerate(inst.offers)
        if off.level in (None, "site") and inst.offer_level(off) == "site"
    )
    offer_blocks[o] = [(0, c1)]
    a, b = ix.gpu_range(0, c1)
    pool = np.concatenate([np.arange(0, a), np.arange(b, ix.n_gpus)])
    # every job gets its least units, then its most, in tree order; the last GPUs (less than
    # one unit of anyone) join a 1-GPU job beyond its maximum (the kernel does not mind)
    units = [0] * len(inst.jobs)
    left = len(pool)
    for want in ("min", "max"):
        for j, job in enumerate(inst.jobs):
            target = max(job.units_min, 1) if want == "min" else job.units_max
            add = min(max(0, target - units[j]), left // job.unit_size)
            units[j] += add
            left -= add * job.unit_size
    j1 = next(j for j, jb in enumerate(inst.jobs) if jb.unit_size == 1)
    units[j1] += left
    pos = 0
    for j, job in enumerate(inst.jobs):
        n = units[j] * job.unit_size
        job_gpus[j] = pool[pos : pos + n]
        pos += n
    return job_gpus, offer_blocks, pos + (b - a)


def to_placement_dict(inst, job_gpus, offer_blocks):
    ix = inst.index
    return {
        "jobs": [
            {"name": j.name, "units": len(g) // j.unit_size, "gpus": ix.gpu_ids(g)}
            for j, g in zip(inst.jobs, job_gpus)
            if len(g)
        ],
        "leases": [
            {"offer": o.name, "blocks": [ix.domain_path(lv, d) for lv, d in bl]}
            for o, bl in zip(inst.offers, offer_blocks)
            if bl
        ],
    }


def candidates(inst, j, C, rng):
    """C candidate GPU arrays for job j: random whole-node-aligned regions of free H100/H200
    GPUs in one site, with units shuffled (rank layouts differ)."""
    ix = inst.index
    job = inst.jobs[j]
    n = job.units_max * job.unit_size
    ok_types = [ix.type_names.index(t) for t in (job.gpu_types or ix.type_names)]
    idx = np.flatnonzero(np.isin(ix.gpu_type, ok_types) & ix.available)
    starts = rng.integers(0, len(idx) - n, size=C)
    starts -= starts % 8
    base = idx[starts[:, None] + np.arange(n)[None, :]]
    units = base.reshape(C, job.units_max, job.unit_size)
    perm = np.argsort(rng.random((C, job.units_max)), axis=1)
    return np.take_along_axis(units, perm[:, :, None], axis=1).reshape(C, n)


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer candidates, no full reference")
    args = ap.parse_args(argv)
    reference = load_reference()

    import placer
    from placer.io import parse_text, read_text
    from placer.kernel.score import Scorer, score_compiled

    path = ROOT / "instances" / "colossus.yaml"
    raw = parse_text(read_text(path))
    inst = placer.load_instance(path)
    ix = inst.index
    job_gpus, blocks, covered = full_placement(inst)
    out = {"machine": machine(), "gpus": ix.n_gpus, "covered": int(covered)}
    t_full = best_of(lambda: score_compiled(inst, job_gpus, blocks), repeat=7)
    obj = score_compiled(inst, job_gpus, blocks).objective
    out["full_score_ms"] = t_full * 1000
    print(
        f"full colossus score ({covered:,} of {ix.n_gpus:,} GPUs used or leased): "
        f"{t_full * 1000:.1f} ms (target <= 20 ms)"
    )
    # batch
    rng = np.random.default_rng(0)
    j = next(
        i
        for i, jb in enumerate(inst.jobs)
        if jb.units_max * jb.unit_size == 1024 and jb.kind == "training"
    )
    C = 1000 if args.quick else 10_000
    cands = candidates(inst, j, C, rng)
    sc = Scorer(inst, [np.zeros(0, np.int64) for _ in inst.jobs])
    t0 = time.perf_counter()
    vals = np.concatenate([sc.batch_values(j, cands[k : k + 1000]) for k in range(0, C, 1000)])
    t_batch = time.perf_counter() - t0
    out.update(
        batch_job=inst.jobs[j].name,
        batch_candidates=C,
        batch_s=t_batch,
        batch_per_candidate_us=t_batch / C * 1e6,
    )
    print(
        f"batch: {C:,} candidates of {inst.jobs[j].name} (1,024 GPUs): {t_batch:.2f} s, "
        f"{t_batch / C * 1e6:.0f} us per candidate"
    )
    # reference on a sample of candidates (one-job placements)
    sample = 5 if args.quick else 20
    t0 = time.perf_counter()
    ref_vals = []
    for k in range(sample):
        g = [np.zeros(0, np.int64) for _ in inst.jobs]
        g[j] = cands[k]
        pd = to_placement_dict(inst, g, [[] for _ in inst.offers])
        r = reference.reference_score(raw, pd)
        ref_vals.append(next(x["value"] for x in r["jobs"] if x["name"] == inst.jobs[j].name))
    t_ref = (time.perf_counter() - t0) / sample
    assert np.allclose(ref_vals, vals[:sample], rtol=1e-9), "kernel and reference disagree"
    out.update(reference_per_candidate_s=t_ref, batch_speedup=t_ref / (t_batch / C))
    print(
        f"reference: {t_ref * 1000:.0f} ms per candidate -> kernel batch is "
        f"{t_ref / (t_batch / C):,.0f}x faster (target >= 200x); values agree"
    )
    if not args.quick:
        pd = to_placement_dict(inst, job_gpus, blocks)
        t0 = time.perf_counter()
        r = reference.reference_score(raw, pd)
        t_ref_full = time.perf_counter() - t0
        assert abs(r["objective"] - obj) <= 1e-9 * abs(obj), (r["objective"], obj)
        out.update(reference_full_s=t_ref_full, full_speedup=t_ref_full / t_full)
        print(
            f"reference full colossus: {t_ref_full:.1f} s -> kernel is "
            f"{t_ref_full / t_full:,.0f}x faster; objectives agree ({obj:,.0f})"
        )
    write("kernel" + ("-quick" if args.quick else ""), out)


if __name__ == "__main__":
    main()
