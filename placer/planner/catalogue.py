"""A bundled catalogue of common GPU types: HBM and dense peak tensor FLOP/s, each with its
source, used by the planner where an instance does not describe a type itself.

Every figure is the vendor's *dense* figure (no 2:4 structured sparsity: where a datasheet
quotes the sparse figure, it is halved). Memory is the datasheet's capacity read as 10^9
bytes, like every `_GB` of placer; vendors' "80 GB" is nearer 80 GiB, so the fit check is
on the safe side by up to 7%.

Lookup (:func:`lookup`) is by name, case and punctuation ignored: ``H100``, ``h100-sxm``
and ``NVIDIA-H100-80GB-HBM3`` are all the H100 SXM. A bare ``A100`` or ``V100`` is read as
the variant with the *least* memory (40 GB, 16 GB): a plan that fits it fits the other too;
give ``gpu_types.A100.memory_GB: 80`` in the instance for the larger one.

Imports the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuSpec:
    """One catalogue entry: memory (10^9 bytes) and dense peak TFLOP/s per precision."""

    name: str
    memory_GB: float
    peak_TFLOPS: dict[str, float]  # precision (bf16, fp16, fp8) -> dense peak, 10^12 FLOP/s
    source: str
    aliases: tuple[str, ...] = field(default=())


# Sources (datasheets as published by the vendors; figures cross-checked where noted):
_NV_A100 = (
    "NVIDIA A100 Tensor Core GPU datasheet: BF16/FP16 tensor 312 TFLOPS dense (624 sparse); "
    "40 GB HBM2 or 80 GB HBM2e (SXM)"
)
_NV_H100 = (
    "NVIDIA H100 Tensor Core GPU datasheet: SXM BF16/FP16 1,979 TFLOPS and FP8 3,958 with "
    "sparsity, halved to dense 989.4 / 1,978.9 (132 SMs x 528 tensor cores at 1.83 GHz, "
    "glennklockwood.com/garden/processors/h100); 80 GB HBM3. Llama 3 (Dubey et al. 2024, "
    "Table 4) reports 400 TFLOPS per H100 as 41% BF16 MFU, the same peak"
)
_NV_H100_PCIE = (
    "NVIDIA H100 datasheet, PCIe: BF16/FP16 1,513 and FP8 3,026 TFLOPS with sparsity "
    "(756.5 / 1,513 dense); 80 GB HBM2e"
)
_NV_H100_NVL = (
    "NVIDIA H100 datasheet, H100 NVL: BF16/FP16 1,671 and FP8 3,341 TFLOPS with sparsity "
    "(835.5 / 1,670.5 dense); 94 GB HBM3"
)
_NV_H200 = (
    "NVIDIA H200 Tensor Core GPU datasheet: the H100 SXM's tensor cores (BF16 989.4, FP8 "
    "1,978.9 dense) with 141 GB HBM3e"
)
_NV_B200 = (
    "NVIDIA HGX B200 (1,000 W per GPU): BF16/FP16 2,250 and FP8 4,500 TFLOPS dense per GPU "
    "(glennklockwood.com/garden/processors/B200); DGX/HGX B200: 1,440 GB for 8 GPUs = 180 GB"
)
_NV_GB200 = (
    "NVIDIA GB200 NVL72: 360 PFLOPS BF16 and 720 PFLOPS FP8 with sparsity for 72 GPUs, i.e. "
    "2,500 / 5,000 TFLOPS dense per GPU (1,200 W; glennklockwood.com/garden/processors/B200); "
    "13.4 TB HBM3e for 72 GPUs = 186 GB"
)
_AMD_MI300X = (
    "AMD Instinct MI300X datasheet: peak BF16/FP16 1,307.4 and FP8 2,614.9 TFLOPS dense; "
    "192 GB HBM3"
)
_AMD_MI325X = (
    "AMD Instinct MI325X datasheet: peak BF16/FP16 1,307.4 and FP8 2,614.9 TFLOPS dense; "
    "256 GB HBM3E"
)
_NV_L40S = (
    "NVIDIA L40S datasheet: BF16/FP16 tensor 733 and FP8 1,466 TFLOPS with sparsity "
    "(362.05 / 733 dense); 48 GB GDDR6"
)
_NV_V100 = "NVIDIA V100 datasheet, SXM2: 125 TFLOPS FP16 tensor (no BF16, no FP8); 16 or 32 GB HBM2"

CATALOGUE: tuple[GpuSpec, ...] = (
    GpuSpec("A100-40GB", 40, {"bf16": 312, "fp16": 312}, _NV_A100, ("A100", "A10040G")),
    GpuSpec("A100-80GB", 80, {"bf16": 312, "fp16": 312}, _NV_A100, ("A10080G",)),
    GpuSpec(
        "H100",
        80,
        {"bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
        _NV_H100,
        ("H100SXM", "H100SXM5", "H10080GB", "H100SXM580GB", "H10080GBHBM3"),
    ),
    GpuSpec(
        "H100-PCIe", 80, {"bf16": 756.5, "fp16": 756.5, "fp8": 1513}, _NV_H100_PCIE, ("H100PCIE",)
    ),
    GpuSpec(
        "H100-NVL", 94, {"bf16": 835.5, "fp16": 835.5, "fp8": 1670.5}, _NV_H100_NVL, ("H100NVL",)
    ),
    GpuSpec(
        "H200",
        141,
        {"bf16": 989.4, "fp16": 989.4, "fp8": 1978.9},
        _NV_H200,
        ("H200SXM", "H200141GB"),
    ),
    GpuSpec("B200", 180, {"bf16": 2250, "fp16": 2250, "fp8": 4500}, _NV_B200, ("B200SXM",)),
    GpuSpec("GB200", 186, {"bf16": 2500, "fp16": 2500, "fp8": 5000}, _NV_GB200, ("GB200NVL72",)),
    GpuSpec("MI300X", 192, {"bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9}, _AMD_MI300X),
    GpuSpec("MI325X", 256, {"bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9}, _AMD_MI325X),
    GpuSpec("L40S", 48, {"bf16": 362.05, "fp16": 362.05, "fp8": 733}, _NV_L40S),
    GpuSpec("V100-16GB", 16, {"fp16": 125}, _NV_V100, ("V100", "V10016G", "V100SXM2")),
    GpuSpec("V100-32GB", 32, {"fp16": 125}, _NV_V100, ("V10032G", "V100SXM232GB")),
)


def _norm(name: str) -> str:
    """Upper case without punctuation: ``h100-sxm`` -> ``H100SXM``; ``80GB`` keeps its digits."""
    return re.sub(r"[^A-Z0-9]", "", name.upper())


_BY_KEY: dict[str, GpuSpec] = {}
for _spec in CATALOGUE:
    for _key in (_spec.name, *_spec.aliases):
        _BY_KEY.setdefault(_norm(_key), _spec)

# product tokens searched inside longer names (``NVIDIA-H100-80GB-HBM3``), most specific
# first so that ``GB200`` is not read as ``B200`` nor ``H100 NVL`` as ``H100``
_TOKENS: tuple[tuple[str, str], ...] = (
    (r"GB200", "GB200"),
    (r"B200", "B200"),
    (r"H200", "H200"),
    (r"H100.?NVL", "H100-NVL"),
    (r"H100.?PCIE", "H100-PCIe"),
    (r"H100", "H100"),
    (r"A100.?(SXM4.?)?80", "A100-80GB"),
    (r"A100", "A100-40GB"),
    (r"MI325X", "MI325X"),
    (r"MI300X", "MI300X"),
    (r"L40S", "L40S"),
    (r"V100.?(SXM2.?)?32", "V100-32GB"),
    (r"V100", "V100-16GB"),
)
_BY_NAME = {s.name: s for s in CATALOGUE}


def lookup(name: str) -> tuple[GpuSpec | None, bool]:
    """The catalogue entry for an instance's GPU type name, and whether the match was exact
    (the name or an alias, case and punctuation ignored) rather than a product name found
    inside a longer name. ``(None, False)`` when the type is not in the catalogue."""
    spec = _BY_KEY.get(_norm(name))
    if spec is not None:
        return spec, True
    up = name.upper()
    for pattern, entry in _TOKENS:
        if re.search(rf"(^|[^A-Z0-9]){pattern}", up):
            return _BY_NAME[entry], False
    return None, False


PRECISIONS = ("bf16", "fp16", "fp8")

__all__ = ["CATALOGUE", "PRECISIONS", "GpuSpec", "lookup"]
