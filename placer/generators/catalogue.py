"""The catalogue behind the generators: GPU, fabric, WAN and model constants with their
sources (see docs/generators.md), and small numeric helpers.

Imports numpy and the standard library only.
"""

from __future__ import annotations

import math

# --------------------------------------------------------------------------- constants
# Sources of every number: instances/README.md sections 2.1-2.6 (NCCL, SimAI, Llama 3,
# DGX SuperPOD RA, GB200 NVL72, MLPerf) and docs/generators.md.

FIBRE_US_PER_KM = 4.9  # propagation in fibre (n ~ 1.468)
DCI_EQUIPMENT_US = 20.0  # routers + 400ZR optics with FEC at both ends (assumption)
ROUTE_STRETCH = 1.4  # fibre route length / straight-line distance (assumption)
WAN_LADDER_GBPS = (50.0, 200.0, 800.0, 3200.0)  # 0.4 / 1.6 / 6.4 / 25.6 Tb/s

GPU_TYPES: dict[str, dict[str, float]] = {
    "H100": {"power_kW": 1.4, "speed": 1.0},
    "H200": {"power_kW": 1.4, "speed": 1.4},
    "GB200": {"power_kW": 1.8, "speed": 2.5},
}
NODE_FAILURES_PER_DAY = {"H100": 0.0038, "H200": 0.0038, "GB200": 0.0032}

# per-GPU fabric (latency_us, bandwidth_GBps) between GPUs meeting at a level
HGX_FABRIC = {
    "node": (1.0, 370.0),
    "rack": (4.0, 48.5),
    "pod": (4.5, 48.5),
    "hall": (5.5, 46.0),
    "site": (7.0, 23.0),
}
NVL72_FABRIC = {
    "node": (1.0, 722.0),
    "rack": (1.5, 722.0),
    "su": (4.0, 48.5),
    "pod": (4.0, 48.5),
    "hall": (5.5, 46.0),
    "site": (7.0, 23.0),
}
OLDER_SITE_FABRIC = {"hall": (6.5, 24.25), "site": (9.0, 6.9)}  # 2:1 halls, 1:7 taper

# Training model table keyed by the job's GPU count: the first row whose `max_gpus` is at
# least the count gives the pipeline depth and the model shape.
# (max_gpus, pp, model, params, layers, hidden, seq, micro_batches)
TRAINING_MODELS: tuple[tuple[float, int, str, float, int, int, int, int], ...] = (
    (1, 1, "1b", 1.2e9, 24, 2048, 4096, 16),
    (2, 1, "3b", 3.0e9, 28, 3072, 4096, 16),
    (4, 1, "8b", 8.0e9, 32, 4096, 8192, 8),
    (8, 1, "13b", 13e9, 40, 5120, 8192, 8),
    (64, 1, "34b", 34e9, 48, 8192, 8192, 8),
    (512, 2, "70b", 70e9, 80, 8192, 8192, 16),
    (4096, 4, "175b", 175e9, 96, 12288, 8192, 16),
    (16384, 8, "405b", 405e9, 126, 16384, 8192, 16),
    (math.inf, 16, "405b", 405e9, 126, 16384, 8192, 16),
)
# MoE variant of a row (assumption): the row's params are the *active* ones; 30% dense
# (attention, embeddings), 70% routed experts of which 1/8 are active per token.
MOE_DENSE_SHARE = 0.3
MOE_EXPERT_FACTOR = 8.0
MOE_K_EFF = 2

# Inference model table: (model, tp, weights_GB_per_GPU or 0 = no compute_ms, layers,
# hidden, batch_tokens, weight of the draw)
INFERENCE_MODELS: tuple[tuple[str, int, float, int, int, int, float], ...] = (
    ("embed", 1, 0.0, 0, 0, 0, 0.25),
    ("8b", 1, 16.0, 32, 4096, 64, 0.2),
    ("34b-fp8", 2, 17.0, 48, 8192, 32, 0.15),
    ("70b-fp8", 4, 17.5, 80, 8192, 64, 0.2),
    ("70b", 8, 17.5, 80, 8192, 64, 0.1),
    ("405b-fp8", 8, 50.6, 126, 16384, 128, 0.1),
)

PEAK_TFLOPS = 400.0  # achieved bf16 TFLOP/s of the reference H100 (Llama 3)
HBM_TBPS, HBM_EFF, KV_FACTOR = 3.35, 0.6, 1.3  # H100 HBM, achieved share, KV-cache reads
OVERLAP = {"tp": 0.3, "pp": 0.7, "dp": 0.8, "ep": 0.3}
DP_BUCKET_MB = 1500.0

KALOS_MEAN_GPUS_ROW = "Kalos"  # Acme's LLM cluster, used by size_scale="kalos"

MAX_GPUS, MAX_NODES = 4_000_000, 1_000_000  # SPEC 6

# --------------------------------------------------------------------------- small helpers


def _r(x: float, nd: int = 2) -> float:
    """A plain Python float rounded to `nd` decimals (never a numpy scalar)."""
    return float(round(float(x), nd))


def _sig(x: float, n: int = 4) -> float:
    return float(f"{float(x):.{n}g}")


def _pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two dividing `n`, at most `cap`."""
    d = 1
    while d * 2 <= cap and n % (d * 2) == 0:
        d *= 2
    return d


def _fabric(spec: dict[str, tuple[float, float]], levels: list[str]) -> dict:
    return {
        lv: {"latency_us": spec[lv][0], "bandwidth_GBps": spec[lv][1]}
        for lv in reversed(levels)
        if lv in spec
    }
