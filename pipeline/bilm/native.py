"""The fused LSTM cell (``lstmp_cell.c``): compiled by the machine's C compiler on first use,
cached, and called through ctypes. Where no compiler is present (or ``ELMO_NATIVE=0``),
:func:`cell_kernel` returns None and :mod:`.lstmp` runs the same arithmetic in PyTorch.

Why C through ctypes rather than a PyTorch C++ extension: the file needs no PyTorch headers,
so it compiles in about a second with any C compiler and no build tools; the matmuls stay in
PyTorch. ``-march=native`` makes the library specific to the CPU, so the cache key holds the CPU
model and flags: a cache shared between machines never hands one machine another's build.

Cache: ``$ELMO_KERNEL_CACHE``, else ``$XDG_CACHE_HOME/elmo-pipeline`` (``~/.cache/elmo-pipeline``).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("lstmp_cell.c")
# tried in order: the first that compiles is used (no -march=native or OpenMP where unsupported)
FLAG_SETS = [
    ["-O3", "-march=native", "-fopenmp", "-fno-math-errno"],
    ["-O3", "-fopenmp", "-fno-math-errno"],
    ["-O3", "-fno-math-errno"],
]
_i64, _int, _f32, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {
    "lstmp_forward_step": [_i64, _i64, _i64, _int, _int, _f32, _ptr, _i64, _ptr, _ptr, _ptr, _ptr, _i64]
    + [_ptr, _i64, _ptr, _i64],
    "lstmp_backward_h": [_i64, _i64, _i64, _int, _f32, _ptr, _ptr, _ptr, _ptr, _i64],
    "lstmp_backward_cell": [_i64, _i64, _i64, _int, _int, _f32, _ptr, _ptr, _i64, _ptr, _ptr, _i64, _ptr, _ptr, _i64]
    + [_ptr],
    "lstmp_matmul_rows": [_i64, _i64, _i64, _i64, _int, _int, _ptr, _ptr, _ptr],
    "lstmp_steps_few_rows": [_i64, _i64, _i64, _i64, _i64, _int, _int, _f32, _f32, _ptr, _ptr, _ptr, _ptr]
    + [_ptr, _ptr, _ptr, _ptr, _ptr],
}


def cache_dir() -> Path:
    if os.environ.get("ELMO_KERNEL_CACHE"):
        return Path(os.environ["ELMO_KERNEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elmo-pipeline"


def _cpu_model() -> str:
    """The CPU's model and instruction-set flags (what ``-march=native`` compiles for)."""
    seen: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip()
            if key in ("model name", "flags", "Features", "CPU part") and key not in seen:
                seen[key] = line
    except OSError:
        pass
    return "\n".join(seen.values()) or platform.processor() or platform.machine()


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")


def _build(cc: str, target: Path) -> bool:
    """Compile SOURCE into ``target`` (atomically; its directory exists) with the first flag set that works."""
    for flags in FLAG_SETS:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            cmd = [cc, *flags, "-shared", "-fPIC", "-o", tmp, str(SOURCE)]
            if subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0:
                os.replace(tmp, target)
                return True
        except (OSError, subprocess.SubprocessError):
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    return False


def _writable(directory: Path) -> bool:
    """Whether ``directory`` exists or can be made, and files can be written into it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


@functools.cache
def cell_kernel() -> ctypes.CDLL | None:
    """The compiled cell library (built on first use), or None: no compiler, ``ELMO_NATIVE=0``,
    or the build failed (then a warning says so once, and PyTorch runs the cell)."""
    if os.environ.get("ELMO_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None or not SOURCE.is_file():
        return None
    parts = [SOURCE.read_bytes(), cc.encode(), _cpu_model().encode(), repr(FLAG_SETS).encode()]
    key = hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]
    name = f"lstmp_cell-{key}.so"
    target, scratch = cache_dir() / name, None
    if not target.is_file() and not _writable(target.parent):
        warnings.warn(
            f"{target.parent} is not writable: the LSTM cell is compiled for this process only "
            "(ELMO_KERNEL_CACHE names another cache directory)",
            stacklevel=2,
        )
        scratch = Path(tempfile.mkdtemp(prefix="elmo-kernel-"))
        target = scratch / name
    try:
        if not target.is_file() and not _build(cc, target):
            warnings.warn(f"{cc} could not compile {SOURCE.name}; the LSTM cell runs in PyTorch (slower)", stacklevel=2)
            return None
        lib = ctypes.CDLL(str(target))
    except OSError as e:
        warnings.warn(f"the compiled LSTM cell could not be loaded ({e}); it runs in PyTorch (slower)", stacklevel=2)
        return None
    finally:
        if scratch is not None:  # a loaded library stays mapped after its file is removed
            shutil.rmtree(scratch, ignore_errors=True)
    for name, args in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, None
    return lib
