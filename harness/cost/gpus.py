"""The cards a cost is checked against: memory and dense BF16 tensor throughput, from each vendor datasheet.

Memory is the card's capacity in GiB (what nvidia-smi reports: 81,920 MiB on an A100 80GB); the CUDA context and
the allocator's fragmentation take some of it, which `Cost.headroom_gb` does not subtract. Throughput is the
dense figure (the datasheets' headline numbers assume 2:4 sparsity, twice these). The prefill time is an estimate:
FLOPs / (peak × `MFU`), an assumed utilisation.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.config import ConfigError

MFU = 0.4  # assumed model-FLOPs utilisation of a long prefill (an assumption, not a measurement)


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gb: float  # GiB
    bf16_tflops: float  # dense tensor-core peak
    source: str

    def seconds(self, flops: float) -> float:
        """Estimated wall time of `flops` at `MFU` of the dense peak."""
        return flops / (self.bf16_tflops * 1e12 * MFU)


GPUS = {g.name: g for g in (
    Gpu("a100-40gb", 40, 312, "NVIDIA A100 Tensor Core GPU datasheet: BF16 312 TFLOPS (624 sparse), 40 GB HBM2"),
    Gpu("a100-80gb", 80, 312, "NVIDIA A100 Tensor Core GPU datasheet: BF16 312 TFLOPS (624 sparse), 80 GB HBM2e"),
    Gpu("h100-80gb", 80, 989.5, "NVIDIA H100 Tensor Core GPU datasheet, SXM: BF16 1,979 TFLOPS sparse, 80 GB HBM3"),
    Gpu("h100-pcie-80gb", 80, 756, "NVIDIA H100 Tensor Core GPU datasheet, PCIe: BF16 1,513 TFLOPS sparse, 80 GB"),
    Gpu("h200-141gb", 141, 989.5, "NVIDIA H200 Tensor Core GPU datasheet, SXM: BF16 1,979 TFLOPS sparse, 141 GB"),
    Gpu("l40s-48gb", 48, 362.05, "NVIDIA L40S datasheet: BF16 362.05 TFLOPS (733 sparse), 48 GB GDDR6"),
    Gpu("l4-24gb", 24, 121, "NVIDIA L4 datasheet: BF16 242 TFLOPS sparse, 24 GB GDDR6"),
    Gpu("a10-24gb", 24, 125, "NVIDIA A10 datasheet: BF16 125 TFLOPS (250 sparse), 24 GB GDDR6"),
    Gpu("rtx-4090-24gb", 24, 165.2, "NVIDIA Ada Lovelace architecture whitepaper, RTX 4090: peak BF16 tensor 165.2 "
                                    "TFLOPS with FP32 accumulate (330.4 sparse), 24 GB GDDR6X"),
)}


def gpu(name: str) -> Gpu:
    """The card named `name`; a ConfigError naming the known ones otherwise."""
    if name not in GPUS:
        raise ConfigError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
    return GPUS[name]
