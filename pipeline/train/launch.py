"""``python -m pipeline.train.launch SCRIPT [ARGS...]``: run SCRIPT through ``accelerate launch``.

Uses ``configs/accelerate/default.yaml`` (or ``$ELMO_ACCELERATE_CONFIG``) and, when more than one
GPU is visible, adds ``--multi_gpu --num_processes <GPUs>``: the DVC stage then uses every GPU of
whatever machine runs it, with no edits. On a CPU-only machine it is one process.
"""
import os
import subprocess
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "default.yaml"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        import torch
    except ImportError:  # another Python than the project's (e.g. a `dvc` from elsewhere)
        print(f"error: {sys.executable} does not have torch; run from the project's environment: "
              f"`source .venv/bin/activate` (made by `make`), or `make repro`", file=sys.stderr)
        return 1

    config = os.environ.get("ELMO_ACCELERATE_CONFIG", str(DEFAULT_CONFIG))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", config]
    n_gpus = torch.cuda.device_count()
    if "ELMO_ACCELERATE_CONFIG" in os.environ:
        pass  # the user's config (e.g. multi-node) sets the process count itself
    elif n_gpus > 1:
        cmd += ["--multi_gpu", "--num_processes", str(n_gpus)]
    elif n_gpus == 0 and "OMP_NUM_THREADS" not in os.environ:
        # why: accelerate launch otherwise runs a lone CPU process with OMP_NUM_THREADS=1 (one core)
        cmd += ["--num_cpu_threads_per_process", str(os.cpu_count() or 1)]
    return subprocess.call(cmd + argv)


if __name__ == "__main__":
    sys.exit(main())
