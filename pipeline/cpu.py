"""What this machine's CPU can do, read at run time: bf16 is several times faster than fp32 where
the CPU has it natively (AVX512-BF16, AMX) and more than 20× slower where PyTorch emulates it
(an AVX2-only CPU: 2,000 sentences of the released `small` shapes did not embed in 7 minutes,
fp32 took 11 s), so a bf16 request on such a CPU runs in fp32, said once."""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

NATIVE_BF16 = ("avx512_bf16", "amx_bf16")  # x86 flags of native bf16 matmuls (oneDNN uses either)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of /proc/cpuinfo (empty where there is none: then nothing is assumed)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(flags: frozenset[str] | None = None) -> bool | None:
    """Whether the CPU has native bf16 matmuls; None when its flags are unknown (not Linux x86)."""
    flags = cpu_flags() if flags is None else flags
    if not flags or not ({"avx2", "avx512f", "sse4_2"} & flags):
        return None  # not an x86 CPU we can judge (ARM, macOS): bf16 as asked
    return bool(set(NATIVE_BF16) & flags)


def features_line(flags: frozenset[str] | None = None) -> str:
    """The CPU features a speed figure depends on, for benchmark output: e.g. ``avx2 avx512f avx512_bf16 amx_bf16``."""
    flags = cpu_flags() if flags is None else flags
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return " ".join(shown) or "unknown"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_memory(parameters: int, copies: int, what: str, where: str) -> None:
    """Refuse, before allocating, ``parameters`` fp32 values held ``copies`` times (4 to train with
    Adam: weights, gradients, two moments) when they exceed the memory available (CPU runs)."""
    from pipeline.errors import PipelineError

    need, free = 4 * parameters * copies, available_memory()
    if free is not None and need > free:
        raise PipelineError(
            f"{where}: {what}: about {parameters / 1e6:,.0f}M parameters need about {need / 2**30:,.1f} GiB "
            f"({copies}× the weights), and {free / 2**30:,.1f} GiB of memory are available: choose smaller "
            f"sizes (projection_dim, cell_dim, filters, the vocabulary)"
        )


@functools.cache
def bf16_pays(device_type: str) -> bool:
    """Whether bf16 autocast should run on ``device_type``: always on a GPU; on a CPU only with
    native bf16 (else one warning line, and fp32)."""
    import torch

    # PyTorch's kernels may be capped below the CPU (ATEN_CPU_CAPABILITY=avx2): then it emulates too
    capped = torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "AVX2")
    native = native_bf16()
    if device_type != "cpu" or native is None or (native and not capped):
        return True
    why = "PyTorch runs with AVX2 kernels only" if native else "no AVX512-BF16 or AMX"
    print(
        f"warning: bf16 is not native here ({why}): it would be emulated, many times slower than fp32, "
        "so this run uses fp32",
        file=sys.stderr,
    )
    return False


def median_seconds(fn, repeats: int = 3) -> float:
    """The median wall time of ``repeats`` calls of ``fn()`` on this machine (the export's speed
    ratios and bench/: a median, as the machine is noisy)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
