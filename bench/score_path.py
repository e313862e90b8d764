"""Issue 8 item 4: `placer.score` / `placer.check` end to end, side by side in one run.

What each figure measures (the paths differ only in where they start):

1. **kernel only**: ``score_compiled`` on GPU index arrays (what solvers call);
2. **from a loaded Placement, first call**: ``placer.score(inst, placement)`` right after
   ``load_instance`` and ``load_placement``: resolving 180,000 GPU id strings, including the
   one-off id table of the instance (built on first use, then kept with its index);
3. **from a loaded Placement, later calls**: the same call again (what a scheduler that
   scores many placements of one cluster pays each time); ``placer.check`` likewise;
4. **from files**: ``load_placement`` + ``score`` (JSON parsing included);
5. **the reference** (tests/reference.py: plain loops that read like SPEC 3 and 4) scoring
   the same placement from the same dicts.

The placement is the `cpsat` solution of instances/colossus.yaml (every job placed as the
solver chose, colossus-1 leased). Writes score_path.json (bench/results/ with --record, else
bench/out/).

    python -m bench.score_path [--quick] [--record]
"""

from __future__ import annotations

import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench.common import ROOT, best_of, load_reference, machine, parser, write  # noqa: E402


def main(argv=None) -> None:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    import placer
    from placer.io import parse_text, read_text
    from placer.kernel.compiled import compile_placement
    from placer.kernel.score import score_compiled

    repeat = 3 if args.quick else 7
    path = ROOT / "instances" / "colossus.yaml"
    inst = placer.load_instance(path)
    res = placer.solve(inst, solver="cpsat", time_limit=60, seed=0)
    doc = res.placement.model_dump(mode="json")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(doc, f)
        pfile = f.name
    n_ids = sum(len(j["gpus"]) for j in doc["jobs"])
    out = {"machine": machine(), "gpus": inst.index.n_gpus, "placed_gpu_ids": n_ids}

    # a fresh instance, so that the first call pays for the id table as a user's would
    fresh = placer.load_instance(path)
    pl = placer.load_placement(pfile)
    t0 = time.perf_counter()
    s = placer.score(fresh, pl)
    first = time.perf_counter() - t0
    assert abs(s.objective - res.objective) <= 1e-9 * abs(res.objective)
    later = best_of(lambda: placer.score(fresh, pl), repeat=repeat)
    check = best_of(lambda: placer.check(fresh, pl), repeat=repeat)
    assert placer.check(fresh, pl) == []
    files = best_of(lambda: placer.score(fresh, placer.load_placement(pfile)), repeat=repeat)
    cp = compile_placement(fresh, pl)
    kernel = best_of(lambda: score_compiled(fresh, cp.job_gpus, cp.offer_blocks), repeat=repeat)

    reference = load_reference()
    raw = parse_text(read_text(path))
    t0 = time.perf_counter()
    r = reference.reference_score(raw, doc)
    ref = time.perf_counter() - t0
    assert abs(r["objective"] - s.objective) <= 1e-9 * abs(s.objective), "reference disagrees"
    os.unlink(pfile)
    out.update(
        kernel_only_ms=kernel * 1e3,
        score_first_call_ms=first * 1e3,
        score_later_calls_ms=later * 1e3,
        check_later_calls_ms=check * 1e3,
        score_from_file_ms=files * 1e3,
        reference_score_s=ref,
        speedup_vs_reference_first=ref / first,
        speedup_vs_reference_later=ref / later,
        objective=s.objective,
    )
    print(f"colossus: {n_ids:,} placed GPU ids of {inst.index.n_gpus:,} GPUs; objectives agree")
    print(f"  kernel only (index arrays)               {kernel * 1e3:8.1f} ms")
    print(f"  placer.score, loaded Placement, 1st call  {first * 1e3:8.1f} ms (id table built)")
    print(f"  placer.score, loaded Placement, later     {later * 1e3:8.1f} ms (target <= 60 ms)")
    print(f"  placer.check, loaded Placement, later     {check * 1e3:8.1f} ms")
    print(f"  load_placement + score, from the file     {files * 1e3:8.1f} ms")
    print(
        f"  reference (tests/reference.py)            {ref * 1e3:8.1f} ms -> score is "
        f"{ref / later:,.0f}x faster later, {ref / first:,.0f}x on the 1st call (target >= 5x)"
    )
    write("score_path" + ("-quick" if args.quick else ""), out)


if __name__ == "__main__":
    main()
