"""Plans from a model description: a project extension, not SPEC (docs/plans.md).

A training job may describe its model (``model:``: parameters, layers, hidden size, heads,
sequence length, vocabulary, global batch, MoE experts, precision, optimizer,
recomputation, ...) and limits on its plan space (``planner:``: GPUs, ranges of tp, pp, dp
and ep, variants, MFU, ...) instead of giving its tp, pp, dp and message sizes. The
expansion turns such a document into plain SPEC v3: each of those jobs gets ``plans``
(a small Pareto set, 8 by default) and loses ``model`` and ``planner``; nothing else
changes. It works on the raw document, before validation, so the expanded file loads
anywhere.

- :func:`expand_models` ``(data) -> data``: the expanded document (a new dict; the input is
  not modified; a document without ``model:`` comes back as it is).
- :func:`expand` ``(data) -> Expansion``: the same with the warnings and every figure
  behind each plan (what ``placer plans`` prints).

Errors are :class:`~placer.errors.InstanceError` naming the place
(``jobs[2].model.layers: must be a positive integer``), all problems of all jobs at once.

Where it runs: :func:`placer.validate.instance_from_dict` calls :func:`expand` first, so
every loader (files, the service, the cluster, replay, decide) accepts ``model:``.

Imports the model, placer.io, the kernel's cost formulas; nothing imports it but the
loader (placer.validate) and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from placer.errors import InstanceError
from placer.planner.catalogue import CATALOGUE, GpuSpec, lookup
from placer.planner.hardware import Hardware, read_hardware
from placer.planner.search import JobPlans, PlanError, PlanInfo, plan_job

MODEL_KEYS = ("model", "planner")
SPEED_MISMATCH = 0.25  # warn when a type's speed ratio and peak ratio differ by more


@dataclass
class Expansion:
    """An expanded document, its warnings, and the figures behind every derived plan."""

    data: Any
    jobs: list[JobPlans] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    hardware: Hardware | None = None

    def to_dict(self) -> dict[str, Any]:
        hw = self.hardware
        return {
            "warnings": self.warnings,
            "gpu_types": {
                t.name: {
                    "memory_GB": t.memory_GB,
                    "memory_from": t.memory_from,
                    "peak_TFLOPS": t.peak_TFLOPS,
                    "peak_from": t.peak_from,
                    "speed": t.speed,
                }
                for t in (hw.types.values() if hw else [])
            },
            "jobs": [j.to_dict() for j in self.jobs],
        }


def has_models(data: Any) -> bool:
    """Does any job of the document carry `model:` or `planner:`?"""
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        return False
    return any(isinstance(j, dict) and any(k in j for k in MODEL_KEYS) for j in data["jobs"])


def expand(data: Any) -> Expansion:
    """Expand every job's `model:` into SPEC v3 `plans` (see the module docstring)."""
    if not has_models(data):
        return Expansion(data)
    # copies of the top level, the job list and the jobs to expand: the input is not changed
    out = dict(data)
    jobs = out["jobs"] = [
        dict(j) if isinstance(j, dict) and any(k in j for k in MODEL_KEYS) else j
        for j in data["jobs"]
    ]
    problems: list[tuple[str, str]] = []
    hw = read_hardware(out)
    exp = Expansion(out, hardware=hw)
    for ji, j in enumerate(jobs):
        if not isinstance(j, dict) or not any(k in j for k in MODEL_KEYS):
            continue
        if "model" not in j:
            problems.append((f"jobs[{ji}].planner", "is given without model:"))
            continue
        try:
            plans, info = plan_job(j, ji, hw, exp.warnings)
        except PlanError as e:
            problems.extend(e.problems)
            continue
        for k in MODEL_KEYS:
            j.pop(k, None)
        j["plans"] = plans
        exp.jobs.append(info)
    if problems:
        raise InstanceError(problems)
    exp.warnings[:0] = _type_warnings(hw, exp.jobs)
    return exp


def expand_models(data: Any) -> Any:
    """The document with every `model:` expanded into SPEC v3 `plans` (a new dict)."""
    return expand(data).data


def _type_warnings(hw: Hardware, jobs: list[JobPlans]) -> list[str]:
    """Catalogue entries found inside longer names, and speeds that disagree with the peaks
    (compute_ms is for a speed-1 GPU: the instance's speeds scale it, SPEC 4)."""
    used = sorted({t for j in jobs for p in j.plans for t in p.plan["gpu_types"]})
    out = []
    for t in used:
        th = hw.types[t]
        if th.memory_from.startswith("catalogue") and not th.catalogue_exact:
            out.append(f"gpu_types.{t}: read as the catalogue's {th.memory_from[10:]}")
    # the reference: the speed-1 type with a known peak that has the most GPUs
    count = {t: sum(site.cap.get(t, [0])[0] for site in hw.sites) for t in hw.types}
    refs = [
        hw.types[t]
        for t in hw.types
        if hw.types[t].speed == 1.0 and "bf16" in hw.types[t].peak_TFLOPS
    ]
    ref = min(refs, key=lambda r: (-count[r.name], r.name)) if refs else None
    if ref is None:
        return out
    for t in used:
        th = hw.types[t]
        if th is ref or "bf16" not in th.peak_TFLOPS:
            continue
        peak_ratio = th.peak_TFLOPS["bf16"] / ref.peak_TFLOPS["bf16"]
        if abs(th.speed / peak_ratio - 1.0) > SPEED_MISMATCH:
            out.append(
                f"gpu_types.{t}.speed: {th.speed:g}, but its dense BF16 peak is "
                f"{peak_ratio:.2f}x {ref.name}'s; plans' compute_ms are for a speed-1 GPU and "
                "the kernel divides them by this speed"
            )
    return out


__all__ = [
    "CATALOGUE",
    "Expansion",
    "GpuSpec",
    "JobPlans",
    "PlanInfo",
    "expand",
    "expand_models",
    "has_models",
    "lookup",
]
