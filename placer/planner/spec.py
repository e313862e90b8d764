"""The `model:` and `planner:` keys of a job (a project extension, not SPEC): pydantic models
with closed keys (a typo would change the plans, so it is refused) and the cross-field
checks, every problem located (``jobs[2].model.layers: must be a positive integer``).

Imports the model's field types and placer.io's error wrapping only.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from placer.io import _pydantic_problems
from placer.model.fields import (
    AtLeastOne,
    Bool,
    Fraction,
    Name,
    NonNegFloat,
    NonNegInt,
    PosFloat,
    PosInt,
)
from placer.model.instance import MaxLatency, Overlap, Scope


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=False)


def _zero(v: Any) -> int:
    if isinstance(v, bool) or v not in (0, 1, 2, 3):
        raise ValueError(f"must be a ZeRO stage 0, 1, 2 or 3, not {v!r}")
    return int(v)


def _share(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise ValueError(f"must be a number in (0, 1], not {v!r}")
    return float(v)


ZeroStage = Annotated[int, BeforeValidator(_zero)]
Share = Annotated[float, BeforeValidator(_share)]


class ModelSpec(_Closed):
    """A transformer model and how it is trained (the job's `model:`)."""

    params: PosFloat | None = Field(
        None, description="Total parameters; default the GPT count 12 l h^2 (1 + ...)."
    )
    active_params: PosFloat | None = Field(None, description="MoE: parameters used per token.")
    layers: PosInt = Field(description="Transformer layers.")
    hidden: PosInt = Field(description="Hidden size h.")
    heads: PosInt = Field(description="Attention heads a.")
    seq_len: PosInt = Field(description="Sequence length s (tokens).")
    vocab: PosInt = Field(description="Vocabulary size V.")
    global_batch: PosInt = Field(description="Sequences per step at full size.")
    micro_batch: PosInt = Field(1, description="Sequences per microbatch b.")
    ffn_hidden: PosInt | None = Field(None, description="FFN size; default 4 h.")
    experts: PosInt | None = Field(None, description="MoE: routed experts per layer.")
    top_k: PosInt | None = Field(None, description="MoE: experts per token.")
    tied_embeddings: Bool = Field(False, description="Input and output embeddings shared.")
    precision: Literal["bf16", "fp16", "fp8"] = Field(
        "bf16", description="Compute precision (selects the peak); messages stay 2 bytes."
    )
    optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="Mixed-precision Adam (16 B/param) or SGD with momentum (12)."
    )
    state_bytes_per_param: PosFloat | None = Field(
        None, description="Model-state bytes per parameter (default by optimizer; Sailor: 24)."
    )
    zero: ZeroStage = Field(0, description="ZeRO stage sharding the states over DP (0-3).")
    grad_bytes: PosFloat = Field(2.0, description="Bytes per gradient element reduced by DP.")
    recompute: Literal["none", "selective", "full", "auto"] = Field(
        "selective",
        description="Activation recomputation: none, selective (= FlashAttention), full, "
        "or auto (plans with selective and with full).",
    )
    sequence_parallel: Bool = Field(True, description="Megatron sequence parallelism with TP.")
    overhead_GB: NonNegFloat = Field(4.0, description="Fixed memory per GPU, 10^9 bytes.")


class Span(_Closed):
    """An integer range (either end optional)."""

    min: PosInt | None = Field(None, description="Least value.")
    max: PosInt | None = Field(None, description="Largest value.")


Choice = list[PosInt] | Span


class Variant(_Closed):
    """A way to run the job that the model cannot derive: scope, outer synchronisation,
    value (e.g. a convergence discount), overlap. Every shape is offered under every variant."""

    name: Name = Field(description="Prefix of the plans' names.")
    scope: Scope | None = Field(None, description="Scope keys, over the job's own.")
    max_latency_us: MaxLatency | None = Field(None, description="Latency bounds.")
    cross_site_every: AtLeastOne | None = Field(None, description="WAN phase every N steps.")
    value: NonNegFloat | None = Field(None, description="vu per GPU-hour under this variant.")
    overlap: Overlap | None = Field(None, description="Hidden share per dimension.")


class PlannerSpec(_Closed):
    """Limits on the plan space (the job's `planner:`)."""

    gpus: PosInt = Field(description="Most GPUs the job runs on.")
    min_gpus: NonNegInt | None = Field(None, description="Least GPUs (elastic); default gpus.")
    max_plans: PosInt = Field(8, description="Most plans kept (a Pareto set).")
    tp: Choice | None = Field(None, description="Allowed tp: a list, or {min, max}.")
    pp: Choice | None = Field(None, description="Allowed pp (divisors of layers).")
    dp: Choice | None = Field(None, description="Allowed dp (units).")
    ep: Choice | None = Field(None, description="Allowed ep (MoE).")
    mfu: Share = Field(
        0.4, description="Share of the dense peak reached on the FLOPs executed, in (0, 1]."
    )
    batch_slack: Fraction = Field(
        0.0, description="How far the global batch may move to use more GPUs (0.1 = 10%)."
    )
    peak_TFLOPS: dict[Name, PosFloat] | None = Field(
        None, description="Dense peak per GPU type, over the catalogue's."
    )
    variants: list[Variant] | None = Field(None, description="Ways to run the job.")


def parse_closed(cls: type[BaseModel], raw: Any, loc: str) -> tuple[Any, list[tuple[str, str]]]:
    if not isinstance(raw, dict):
        return None, [(loc, "must be a mapping")]
    try:
        return cls.model_validate(raw), []
    except ValidationError as e:
        return None, [
            (f"{loc}.{where}" if where else loc, _yaml_hint(msg))
            for where, msg in _pydantic_problems(e)
        ]


def _yaml_hint(msg: str) -> str:
    """YAML 1.1 (PyYAML) reads `70.6e9` and `141e+9` as strings: say how to write them."""
    m = re.match(r"must be a number, not str '(.*)'$", msg)
    if m:
        try:
            float(m.group(1))
        except ValueError:
            return msg
        return (
            msg + " (YAML reads an exponent as text unless the number has a dot and the"
            " exponent a sign: write 70.6e+9 or 141.0e+9)"
        )
    return msg


def allowed(choice: Choice | None, value: int) -> bool:
    """Is `value` allowed by a list or a {min, max} range (None allows all)?"""
    if choice is None:
        return True
    if isinstance(choice, Span):
        return (choice.min is None or value >= choice.min) and (
            choice.max is None or value <= choice.max
        )
    return value in choice


def parse(job: dict, ji: int) -> tuple[ModelSpec | None, PlannerSpec | None, list[tuple[str, str]]]:
    """Validate a job's `model` and `planner`, with the cross-field checks; located problems."""
    base = f"jobs[{ji}]"
    m, p1 = parse_closed(ModelSpec, job.get("model"), f"{base}.model")
    if "planner" not in job:
        p, p2 = None, [(f"{base}.planner", "is required with model: (at least planner.gpus)")]
    else:
        p, p2 = parse_closed(PlannerSpec, job.get("planner"), f"{base}.planner")
    problems = p1 + p2
    if m is not None:
        loc = f"{base}.model"
        if m.hidden % m.heads:
            problems.append((f"{loc}.heads", f"must divide hidden ({m.hidden}), not {m.heads}"))
        if m.global_batch % m.micro_batch:
            problems.append(
                (
                    f"{loc}.micro_batch",
                    f"must divide global_batch ({m.global_batch}), not {m.micro_batch}",
                )
            )
        if m.experts is not None or m.top_k is not None or m.active_params is not None:
            if m.experts is None or m.experts < 2:
                problems.append((f"{loc}.experts", "a MoE model needs experts >= 2"))
            if m.top_k is None:
                problems.append((f"{loc}.top_k", "is required with experts"))
            elif m.experts is not None and m.top_k >= m.experts:
                problems.append((f"{loc}.top_k", f"must be less than experts ({m.experts})"))
            if m.active_params is None:
                problems.append((f"{loc}.active_params", "is required with experts"))
            if m.params is None:
                problems.append((f"{loc}.params", "is required with experts"))
            elif m.active_params is not None and m.active_params >= m.params:
                problems.append(
                    (f"{loc}.active_params", f"must be less than params ({m.params:.4g})")
                )
    if p is not None:
        loc = f"{base}.planner"
        if p.min_gpus is not None and p.min_gpus > p.gpus:
            problems.append(
                (f"{loc}.min_gpus", f"must be at most gpus ({p.gpus}), not {p.min_gpus}")
            )
        for key in ("tp", "pp", "dp", "ep"):
            c = getattr(p, key)
            if isinstance(c, Span) and c.min is not None and c.max is not None and c.min > c.max:
                problems.append((f"{loc}.{key}.min", f"must be at most max ({c.max}), not {c.min}"))
            if isinstance(c, list) and not c:
                problems.append((f"{loc}.{key}", "must not be empty (omit it to allow any)"))
        seen: dict[str, int] = {}
        for vi, v in enumerate(p.variants or []):
            if v.name in seen:
                problems.append(
                    (f"{loc}.variants[{vi}].name", f"duplicate variant name {v.name!r}")
                )
            seen[v.name] = vi
        if p.variants is not None and not p.variants:
            problems.append((f"{loc}.variants", "must not be empty (omit it for one way)"))
    return m, p, problems


__all__ = ["ModelSpec", "PlannerSpec", "Span", "Variant", "allowed", "parse"]
