"""``python -m pipeline.train.launch SCRIPT [ARGS...]``: run SCRIPT through ``accelerate launch``.

Uses ``pipeline/configs/accelerate/default.yaml`` (or ``$ELMO_ACCELERATE_CONFIG``) and, when more than one
GPU is visible, adds ``--multi_gpu --num_processes <GPUs>``: the DVC stage then uses every GPU of
whatever machine runs it, with no edits. On a CPU-only machine it is one process.

One process (a CPU, or one GPU) needs nothing of ``accelerate launch``: the trainer is run directly
with the environment that command would give it, so a refusal is the trainer's own one line and
exit code (``accelerate launch`` would add a ``CalledProcessError`` traceback and print it twice).
Several GPUs, or a config of yours, go through ``accelerate launch --quiet``.

No trainer outlives the command that started it: the child is started with the kernel told to stop
it (SIGTERM) when this launcher dies, and every trainer process asks the same for itself when it
starts (:func:`die_with_launcher`, called by the stage), so killing the launcher, even with SIGKILL,
ends the whole chain. The child runs in its own process group, and SIGINT, SIGTERM and SIGHUP to the
launcher are passed on to it once, so Ctrl-C and ``kill -INT <launcher>`` alike stop it cleanly.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "default.yaml"


LAUNCHED = "ELMO_LAUNCHED"  # set for the processes this launcher starts


# glibc hands large freed blocks back to the OS at once and maps every big tensor anew: with these
# (read by glibc at process start, so set for the trainers this launcher starts; yours win) a
# training step reuses its memory. Measured: bench/pretrain_throughput.py --presets cpu --no-baseline,
# 3 alternating runs each, 4,511 → 4,698 tokens/s median (+4%), system time 0.9 → 0.65 s.
MALLOC_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def die_with_launcher() -> None:
    """In a trainer started by this launcher or by torchrun: :func:`die_with_parent`. A trainer
    run by hand (e.g. under ``nohup``) keeps running when its shell goes."""
    if os.environ.get(LAUNCHED) or os.environ.get("TORCHELASTIC_RUN_ID"):
        die_with_parent()


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies; if the parent is
    already gone (we were re-parented to init), stop now. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if parent == 1 or os.getppid() != parent:
        os.kill(os.getpid(), sig)


def run_forwarding_signals(cmd: list[str], env: dict | None = None) -> int:
    """Run ``cmd`` (dying with us, in its own process group), pass SIGINT/SIGTERM/SIGHUP on to it,
    return its exit code (128 + N for a child ended by signal N, as a shell reports it)."""
    env = {**MALLOC_SETTINGS, **os.environ, **(env or {}), LAUNCHED: "1"}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited as ignored (a background job)
    proc = subprocess.Popen(cmd, preexec_fn=die_with_parent, env=env, process_group=0)

    def forward(signum, _frame):
        proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    code = proc.wait()
    return 128 - code if code < 0 else code


def single_process_env(n_gpus: int) -> dict:
    """What ``accelerate launch`` sets for one process with pipeline/configs/accelerate/default.yaml."""
    env = {"ACCELERATE_USE_CPU": "False", "ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO"}
    if n_gpus == 0 and "OMP_NUM_THREADS" not in os.environ:
        # why: one process gets every core (accelerate launch alone would give it OMP_NUM_THREADS=1)
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    return env


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        import torch
    except ImportError:  # another Python than the project's (e.g. a `dvc` from elsewhere)
        print(
            f"error: {sys.executable} does not have torch; run from the project's environment: "
            f"`source .venv/bin/activate` (made by `make`), or `make repro`",
            file=sys.stderr,
        )
        return 1

    n_gpus = torch.cuda.device_count()
    if "ELMO_ACCELERATE_CONFIG" not in os.environ and n_gpus <= 1:
        return run_forwarding_signals([sys.executable] + argv, single_process_env(n_gpus))
    config = os.environ.get("ELMO_ACCELERATE_CONFIG", str(DEFAULT_CONFIG))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", config]
    if "ELMO_ACCELERATE_CONFIG" not in os.environ:  # the user's config (e.g. multi-node) sets the process count itself
        cmd += ["--multi_gpu", "--num_processes", str(n_gpus)]
    return run_forwarding_signals(cmd + argv)


if __name__ == "__main__":
    sys.exit(main())
