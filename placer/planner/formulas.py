"""The formulas of the planner: parameters, FLOPs, memory per GPU and traffic per step of a
transformer trained with tensor (TP), pipeline (PP, 1F1B), data (DP) and expert (EP)
parallelism. Each function names its source; docs/plans.md lists them all.

Sources
- [N21] Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters
  Using Megatron-LM", SC '21 (arXiv 2104.04473): parameters (s5.1), FLOPs per iteration
  (eq. 3), the four TP all-reduces per layer per microbatch (s3.2), PP messages of b*s*h
  per microbatch per boundary with the scatter/gather optimisation (b*s*h/t, s4.1), 1F1B
  with at most p microbatches in flight (s2.2.1).
- [K22] Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
  Models", MLSys 2023 (arXiv 2205.05198): activation bytes per layer (Table 2), the first
  stage holding p microbatches (s4.2.3), selective recomputation.
- [Z20] Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
  Models", SC '20 (arXiv 1910.02054): 2 + 2 + K = 16 bytes per parameter for mixed-precision
  Adam (K = 12), sharded as 4 + K/d (stage 1), 2 + (2 + K)/d (stage 2), (4 + K)/d (stage 3);
  stage 3 moves 1.5x the data-parallel volume (s7.2.2).
- [MLM] Megatron-LM (github.com/NVIDIA/Megatron-LM): theoretical_memory_usage.py (the
  embedding and output-layer activations; 18 + 4 ffn/h bytes per layer for other FFN
  sizes), and Megatron-Core's DDP default gradient bucket of max(4e7, 1e6 * dp) parameters.
- [P22] Chowdhery et al., "PaLM" (arXiv 2204.02311), appendix B: model FLOPs per token
  6N + 12 L h s (the attention term); the same count as [N21] eq. 3 without recomputation.

Assumptions of this module (documented in docs/plans.md, "Limits"): the layers of a job are
identical and split evenly over the stages (pp divides the layer count); the input
embedding sits on the first stage and the output layer on the last; activations and the
messages of TP, PP and EP are 2 bytes per element (bf16/fp16, also with FP8 compute);
MoE layers route each token to top_k experts, experts are spread over the tp * ep GPUs of
ep units (expert tensor parallelism 1), and only the attention of a MoE layer is tensor
parallel (2 TP all-reduces per layer instead of 4).

Units: parameters and FLOPs as counts, memory in bytes, messages in bytes (callers convert
to MB = 10^6 bytes). Imports the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ACT_BYTES = 2  # bytes per activation element (bf16 / fp16)


@dataclass(frozen=True)
class Model:
    """A transformer described by its shape (validated by :mod:`placer.planner.spec`)."""

    layers: int
    hidden: int
    heads: int
    seq_len: int
    vocab: int
    global_batch: int  # sequences per step at full size
    micro_batch: int = 1  # sequences per microbatch
    params: float | None = None  # total; None: the GPT formula of [N21]
    active_params: float | None = None  # MoE: used per token
    ffn_hidden: int | None = None  # None: 4 * hidden ([K22]'s 34 bytes)
    experts: int | None = None
    top_k: int | None = None
    tied_embeddings: bool = False
    sequence_parallel: bool = True

    @property
    def moe(self) -> bool:
        return bool(self.experts and self.experts > 1)

    @property
    def total_params(self) -> float:
        if self.params is not None:
            return self.params
        return gpt_params(self.layers, self.hidden, self.vocab, self.seq_len)

    @property
    def embedding_params(self) -> float:
        """Parameters of one embedding table (vocab x hidden)."""
        return float(self.vocab) * self.hidden

    @property
    def embedding_copies(self) -> int:
        return 1 if self.tied_embeddings else 2


def gpt_params(layers: int, hidden: int, vocab: int, seq_len: int) -> float:
    """Parameters of a GPT model, [N21] s5.1: P = 12 l h^2 (1 + 13/(12 h) + (V + s)/(12 l h))."""
    l, h = layers, hidden
    return 12.0 * l * h * h * (1.0 + 13.0 / (12.0 * h) + (vocab + seq_len) / (12.0 * l * h))


@dataclass(frozen=True)
class Split:
    """A model's parameters by where they live (per layer, and the embedding tables)."""

    layer_dense: float  # per layer, not routed (attention, norms, shared experts)
    layer_experts: float  # per layer, all routed experts together (0 for dense models)
    layer_active: float  # per layer, used by one token: dense + top_k experts
    embedding: float  # one table, vocab x hidden


def split_params(m: Model) -> Split:
    """Per-layer parameters from the totals: the body (all but the embedding tables) split
    evenly over the layers; for MoE, one expert x = (total - active) / (E - k) of the
    routed experts of all layers, so that total = dense + E x and active = dense + k x.
    Raises ValueError (naming the field) when the totals cannot hold the tables."""
    emb = m.embedding_params
    body = m.total_params - m.embedding_copies * emb
    if body <= 0:
        raise ValueError(
            "params: smaller than the embedding tables (vocab x hidden"
            f"{' x 2, untied' if m.embedding_copies == 2 else ''} = {m.embedding_copies * emb:.4g})"
        )
    if not m.moe:
        per = body / m.layers
        return Split(per, 0.0, per, emb)
    assert m.experts is not None and m.top_k is not None and m.active_params is not None
    active_body = m.active_params - m.embedding_copies * emb
    if active_body <= 0:
        raise ValueError("active_params: smaller than the embedding tables")
    x = (body - active_body) / (m.experts - m.top_k)  # one expert of every layer together
    dense = body - m.experts * x
    if x <= 0 or dense < 0:
        raise ValueError(
            f"active_params: with {m.experts} experts and top_k {m.top_k}, total "
            f"{m.total_params:.4g} and active {m.active_params:.4g} give no consistent split"
        )
    L = m.layers
    return Split(dense / L, m.experts * x / L, (dense + m.top_k * x) / L, emb)


# --------------------------------------------------------------------------- FLOPs


def layer_forward_flops_per_token(m: Model, sp: Split) -> float:
    """Forward FLOPs of one layer per token: 2 x (parameters used) for the matrix products,
    plus 4 s h for the attention scores and their product with the values ([N21] s5.1:
    24 B s h^2 + 4 B s^2 h per layer, i.e. 2 x 12 h^2 + 4 s h per token)."""
    return 2.0 * sp.layer_active + 4.0 * m.seq_len * m.hidden


def recompute_flops_per_token(m: Model, sp: Split, recompute: str) -> float:
    """Extra forward FLOPs of one layer per token in the backward pass: full recomputation
    repeats the layer's forward ([N21]: 4 passes, hence 96 instead of 72); selective
    recomputation repeats only the attention core, 4 s h ([K22] s5)."""
    if recompute == "full":
        return layer_forward_flops_per_token(m, sp)
    if recompute == "selective":
        return 4.0 * m.seq_len * m.hidden
    return 0.0


def model_flops_per_token(m: Model, sp: Split) -> float:
    """Model FLOPs per token of a training step (forward + backward = 3 forwards, no
    recomputation): 6 N_active + 12 L h s + 6 h V ([P22] app. B; [N21] eq. 3 / 96 * 72)."""
    return 3.0 * m.layers * layer_forward_flops_per_token(m, sp) + 6.0 * m.hidden * m.vocab


def hardware_flops_per_token(m: Model, sp: Split, recompute: str) -> float:
    """FLOPs executed per token, recomputation included."""
    return model_flops_per_token(m, sp) + m.layers * recompute_flops_per_token(m, sp, recompute)


def narayanan_flops_per_iteration(B: int, s: int, l: int, h: int, V: int) -> float:
    """[N21] eq. 3, with full recomputation: F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h))."""
    return 96.0 * B * s * l * h * h * (1.0 + s / (6.0 * h) + V / (16.0 * l * h))


def stage_flops_per_microbatch(m: Model, sp: Split, pp: int, recompute: str) -> float:
    """FLOPs of the slowest pipeline stage for one microbatch (all its TP ranks together):
    L/pp layers, and on the last stage also the output layer (forward 2 h V per token, x3)."""
    per_layer = 3.0 * layer_forward_flops_per_token(m, sp) + recompute_flops_per_token(
        m, sp, recompute
    )
    tokens = m.micro_batch * m.seq_len
    return tokens * ((m.layers // pp) * per_layer + 6.0 * m.hidden * m.vocab)


# --------------------------------------------------------------------------- memory


def activation_bytes_per_layer(m: Model, tp: int, recompute: str) -> float:
    """Activation bytes one layer keeps for one microbatch until its backward, [K22] Table 2
    (s sequence, b microbatch, h hidden, a heads, t = tp):

    - no recomputation: s b h (10 + 24/t + 5 a s/(h t)); with sequence parallelism
      (s b h / t) (34 + 5 a s / h)
    - selective recomputation (the attention core; FlashAttention keeps the same): s b h
      (10 + 24/t); with sequence parallelism 34 s b h / t
    - full recomputation: the layer's input only, 2 s b h (divided by t with sequence
      parallelism, whose input is sharded)

    The 34 is for an FFN of 4h; another FFN size gives 18 + 4 ffn/h ([MLM]). A MoE layer
    keeps its FFN activations for each of the top_k experts a token visits (assumption:
    the FFN part, 19 of the 34, scales with top_k)."""
    s, b, h, a, t = m.seq_len, m.micro_batch, m.hidden, m.heads, tp
    sbh = float(s) * b * h
    if recompute == "full":
        return 2.0 * sbh / (t if m.sequence_parallel else 1)
    ffn_ratio = (m.ffn_hidden / h) if m.ffn_hidden else 4.0
    k = m.top_k if m.moe and m.top_k else 1
    # 34 = 15 (attention block, norms) + 19 (FFN); 18 + 4 f/h generalises the FFN part
    dense_part = 18.0 + 4.0 * ffn_ratio  # 34 for f = 4h
    per = dense_part + (k - 1) * (dense_part - 15.0)
    scores = 5.0 * a * s / h if recompute == "none" else 0.0
    if m.sequence_parallel or t == 1:
        return sbh / t * (per + scores)
    # without sequence parallelism the 10 s b h of norms, dropout and residuals is replicated
    return sbh * (10.0 + (per - 10.0) / t + scores / t)


def in_flight(pp: int, stage: int, microbatches: int) -> int:
    """Microbatches whose activations stage `stage` (0-based) holds at once under 1F1B:
    min(pp - stage, m) ([N21] s2.2.1, [K22] s4.2.3)."""
    return max(1, min(pp - stage, microbatches))


def state_bytes_per_param(bytes_per_param: float, zero: int, dp: int) -> float:
    """Model-state bytes per parameter on one GPU, [Z20] s5: B = 2 (weights) + 2 (gradients)
    + K (optimizer); ZeRO stage 1 shards K over the dp replicas, stage 2 also the gradients,
    stage 3 everything."""
    d = max(1, dp)
    K = max(0.0, bytes_per_param - 4.0)
    if zero == 1:
        return 4.0 + K / d
    if zero == 2:
        return 2.0 + (2.0 + K) / d
    if zero == 3:
        return bytes_per_param / d
    return bytes_per_param


def params_on_stage(m: Model, sp: Split, tp: int, pp: int, ep: int, stage: int) -> float:
    """Parameters held by one GPU of stage `stage`: its layers' dense parameters / tp, their
    experts / (tp ep), the input embedding on the first stage and the output layer on the
    last ([MLM]: untied, or tied with pp > 1, the last stage holds its own copy)."""
    lps = m.layers // pp
    p = lps * (sp.layer_dense / tp + sp.layer_experts / (tp * ep))
    if stage == 0:
        p += sp.embedding / tp
    if stage == pp - 1 and (m.embedding_copies == 2 or pp > 1):
        p += sp.embedding / tp
    return p


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU of the stage that needs the most."""

    stage: int
    states: float
    activations: float
    overhead: float

    @property
    def total(self) -> float:
        return self.states + self.activations + self.overhead


def stage_memory(
    m: Model,
    sp: Split,
    tp: int,
    pp: int,
    ep: int,
    microbatches: int,
    recompute: str,
    bytes_per_param: float,
    zero: int,
    zero_dp: int,
    overhead_bytes: float,
    stage: int,
) -> Memory:
    """Bytes on one GPU of stage `stage`: model states ([Z20]), the activations of its
    in-flight microbatches ([K22]) and a fixed overhead (CUDA context, NCCL buffers,
    fragmentation: Sailor's measured 2-5 GB)."""
    states = params_on_stage(m, sp, tp, pp, ep, stage) * state_bytes_per_param(
        bytes_per_param, zero, zero_dp
    )
    n = in_flight(pp, stage, microbatches)
    lps = m.layers // pp
    t_sp = tp if m.sequence_parallel else 1
    sb, h = float(m.seq_len) * m.micro_batch, m.hidden
    act = n * lps * activation_bytes_per_layer(m, tp, recompute)
    if recompute == "full":  # one layer's full activations while it is recomputed
        act += activation_bytes_per_layer(m, tp, "selective")
    if stage == 0:  # input ids (8 bytes each) and the embedding's dropout mask ([MLM])
        act += n * (8.0 * sb + sb * h) / t_sp
    if stage == pp - 1:  # output layer's input and the fp32 logits ([MLM]: 4 s b h (1 + V/h))
        act += 4.0 * sb * (h + m.vocab) / tp
    return Memory(stage, states, act, overhead_bytes)


def peak_memory(
    m: Model,
    sp: Split,
    tp: int,
    pp: int,
    ep: int,
    microbatches: int,
    recompute: str,
    bytes_per_param: float,
    zero: int,
    zero_dp: int,
    overhead_bytes: float,
) -> Memory:
    """The stage needing the most memory: the first (most in-flight microbatches, the input
    embedding) or the last (the output layer and its logits); the middle stages hold no more
    than the first."""
    args = (m, sp, tp, pp, ep, microbatches, recompute, bytes_per_param, zero, zero_dp)
    first = stage_memory(*args, overhead_bytes, 0)
    if pp == 1:
        return first
    last = stage_memory(*args, overhead_bytes, pp - 1)
    return first if first.total >= last.total else last


# --------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class Traffic:
    """Per GPU per step, SPEC's `comm`: bytes and collective counts per dimension."""

    tp_bytes: float = 0.0
    tp_messages: float = 0.0
    pp_bytes: float = 0.0
    pp_messages: float = 0.0
    dp_bytes: float = 0.0
    dp_messages: float = 0.0
    ep_bytes: float = 0.0
    ep_messages: float = 0.0


def traffic(
    m: Model,
    sp: Split,
    tp: int,
    pp: int,
    dp: int,
    ep: int,
    microbatches: int,
    recompute: str,
    grad_bytes: float,
    zero: int,
) -> Traffic:
    """Message sizes and counts per step of one GPU (SPEC 1.2 `comm`), with A = b s h x 2 B:

    - TP ([N21] s3.2): 4 all-reduces of A per layer per microbatch (2 forward, 2 backward;
      with sequence parallelism the same volume as all-gathers and reduce-scatters); 2 for a
      MoE layer (attention only); full recomputation repeats the forward ones (x1.5).
    - PP ([N21] s4.1): per microbatch one activation forward and one gradient backward over a
      boundary, each A/t with the scatter/gather optimisation: 2m messages.
    - DP: the gradients of the GPU's parameters (the stage holding the most), grad_bytes
      each ([N21] s3.1 ring all-reduce); ZeRO-3 moves 1.5x ([Z20] s7.2.2); buckets of
      max(4e7, 1e6 dp) parameters ([MLM]) give the message count.
    - EP (MoE): dispatch and combine all-to-alls, forward and backward, per layer per
      microbatch (4; 6 with full recomputation), each moving the GPU's b s/t tokens x top_k
      x h x 2 B. With ep = 1 (the experts spread over the unit's tp ranks) these
      all-to-alls run inside the TP group and count as TP traffic, each as half an
      all-reduce of its size (SPEC 4: (n-1)/n S/B against 2(n-1)/n S/B).
    """
    A = float(m.micro_batch) * m.seq_len * m.hidden * ACT_BYTES
    lps = m.layers // pp
    rc = 1.5 if recompute == "full" else 1.0
    out: dict[str, float] = {}
    routed = float(m.micro_batch) * (m.seq_len / tp) * (m.top_k or 1) * m.hidden * ACT_BYTES
    if tp > 1:
        n = (2 if m.moe else 4) * rc * lps * microbatches
        vol = n * A
        if m.moe and ep == 1:
            # the experts are spread over the unit's tp ranks: dispatch and combine run
            # among them, each all-to-all costing half an all-reduce of its size (SPEC 4)
            a2a = 4 * rc * lps * microbatches
            n += a2a / 2
            vol += a2a * routed / 2
        out["tp_messages"] = n
        out["tp_bytes"] = vol
    if pp > 1:
        out["pp_messages"] = 2.0 * microbatches
        out["pp_bytes"] = 2.0 * microbatches * A / tp
    worst = max(params_on_stage(m, sp, tp, pp, ep, s) for s in {0, pp - 1})
    out["dp_bytes"] = worst * grad_bytes * (1.5 if zero == 3 else 1.0)
    out["dp_messages"] = float(max(1, math.ceil(worst / max(4e7, 1e6 * dp))))
    if m.moe and ep > 1:
        n = 4 * rc * lps * microbatches
        out["ep_messages"] = n
        out["ep_bytes"] = n * routed
    return Traffic(**out)


__all__ = [
    "ACT_BYTES",
    "Memory",
    "Model",
    "Split",
    "Traffic",
    "activation_bytes_per_layer",
    "gpt_params",
    "hardware_flops_per_token",
    "in_flight",
    "layer_forward_flops_per_token",
    "model_flops_per_token",
    "narayanan_flops_per_iteration",
    "params_on_stage",
    "peak_memory",
    "recompute_flops_per_token",
    "split_params",
    "stage_flops_per_microbatch",
    "stage_memory",
    "state_bytes_per_param",
    "traffic",
]
