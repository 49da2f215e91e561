"""Fault injection: SIGKILL pretraining at random moments, some of them while a checkpoint is being
written, resume after each, and compare with an uninterrupted run of the same settings.

    .venv/bin/python bench/fault_injection.py                      # 5 kills, 1 process, then 2 (torchrun, gloo)
    .venv/bin/python bench/fault_injection.py --kills 5 --processes 1 --seed 1

Per kill it prints when it landed (seconds after the start, or "mid-checkpoint" when a checkpoint's
temporary directory was on disk at that moment) and whether every checkpoint then on disk loads
(weights, optimizer, state). Then "k of k resumed": every restart ran, the final weights are
compared bit for bit with the uninterrupted run's, and so is the loss column of train.tsv (the
curve; throughput and times differ by nature). Killed means the whole process tree (the trainer,
torchrun and its workers) by SIGKILL, as a power cut or the OOM killer would.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL = dict(filters=[[1, 8], [2, 8], [3, 16]], n_highway=1, projection_dim=64, cell_dim=256, dropout=0.2)
PRETRAIN = dict(
    max_tokens=400,
    epochs=1000,
    max_steps=64,
    lr=0.005,
    eval_every=12,
    checkpoint_every=4,
    keep_checkpoints=3,
    log_every=1,
    seed=3,
)


def prepare(tmp: Path) -> Path:
    from pipeline.config import PrepareConfig
    from pipeline.data.corpus import read_corpus
    from pipeline.data.prepare import prepare_corpus

    lines = [line.text for line in read_corpus("default")][:120]
    (tmp / "c.txt").write_text("\n".join(lines) + "\n")
    c = str(tmp / "c.txt")
    prepare_corpus(PrepareConfig(corpus=c, valid=c, test=c, min_count=1), tmp / "prep", progress=False)
    return tmp / "prep"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(processes: int, params: Path, prep: Path, out: Path) -> list[str]:
    stage = [
        "stages/pretrain.py",
        "--params",
        str(params),
        "--prepared",
        str(prep),
        "--out",
        str(out / "model"),
        "--metrics",
        str(out / "metrics.json"),
        "--plots",
        str(out / "plots"),
        "-q",
    ]
    if processes == 1:
        return [sys.executable, *stage]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(processes),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *stage,
    ]


def environment(processes: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1") if processes > 1 else dict(os.environ)


def processes_naming(out: Path) -> list[int]:
    """PIDs whose command line names ``out`` (torchrun's workers run in sessions of their own)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if str(out).encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def kill_tree(proc: subprocess.Popen, out: Path) -> None:
    for pid in [proc.pid, *processes_naming(out)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    deadline = time.time() + 30
    while processes_naming(out) and time.time() < deadline:
        time.sleep(0.05)


def temporaries(ckpt_dir: Path) -> set[str]:
    """Checkpoint directories being written (atomic_path's ``.step-NNNNNNN.*.tmp``)."""
    try:
        return {p.name for p in os.scandir(ckpt_dir) if p.name.startswith(".step-") and p.name.endswith(".tmp")}
    except FileNotFoundError:
        return set()


def table_id(out: Path) -> int | None:
    try:
        return (out / "plots" / "train.tsv").stat().st_ino
    except FileNotFoundError:
        return None


def logged_step(out: Path) -> int:
    try:
        rows = (out / "plots" / "train.tsv").read_text().splitlines()[1:]
        return int(rows[-1].split("\t")[0]) if rows else 0
    except (FileNotFoundError, ValueError, IndexError):
        return 0


def wait_and_kill(proc, out: Path, mid_checkpoint: bool, target_step: int) -> str | None:
    """Kill the run tree when a new checkpoint is being written (``mid_checkpoint``) or once it has
    logged ``target_step``; returns where it landed, or None if the run ended first."""
    ckpt_dir, start = out / "model" / "checkpoints", time.time()
    old = temporaries(ckpt_dir)  # a killed run's leftovers, removed by the next run
    old_table = table_id(out)  # the killed run's curve, until this run rewrites it (atomically) on resume
    while proc.poll() is None:
        writing = temporaries(ckpt_dir) - old
        reached = table_id(out) not in (None, old_table) and logged_step(out) >= target_step
        if mid_checkpoint and writing or not mid_checkpoint and reached:
            kill_tree(proc, out)
            still = sorted(writing & temporaries(ckpt_dir))
            return f"{time.time() - start:5.1f} s, " + (
                f"while writing {still[0][1:13]}" if still else f"step {logged_step(out)}"
            )
        time.sleep(0.0005 if mid_checkpoint else 0.005)
    return None


def checkpoints_load(out: Path) -> tuple[int, list[str]]:
    """(how many checkpoints are on disk, the ones that fail to load with their error)."""
    import torch

    from pipeline.bilm.model import load_bilm
    from pipeline.train.checkpoint import list_checkpoints

    bad, ckpts = [], list_checkpoints(out / "model" / "checkpoints")
    for c in ckpts:
        try:
            load_bilm(c)
            torch.load(c / "optimizer.pt", weights_only=True)
            torch.load(c / "state.pt", weights_only=True)
        except Exception as e:  # any failure to load is what this script looks for
            bad.append(f"{c.name}: {type(e).__name__}: {e}")
    return len(ckpts), bad


def loss_curve(out: Path) -> list[tuple[str, str]]:
    rows = (out / "plots" / "train.tsv").read_text().splitlines()[1:]
    return [tuple(r.split("\t")[:3]) for r in rows]  # step, epoch, loss


def final_weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "checkpoints" / f"step-{PRETRAIN['max_steps']:07d}" / "model.safetensors"))


def last_checkpoint(out: Path) -> int:
    from pipeline.train.checkpoint import list_checkpoints

    ckpts = list_checkpoints(out / "model" / "checkpoints")
    return int(ckpts[-1].name.split("-")[1]) if ckpts else 0


def run_killed(processes: int, kill: int, rng: random.Random, params: Path, prep: Path, cut: Path):
    """One start of the run, killed; (where the kill landed or None, whether it had resumed)."""
    target = last_checkpoint(cut) + rng.randint(2, 9)
    proc = subprocess.Popen(
        command(processes, params, prep, cut),
        cwd=REPO,
        env=environment(processes),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    when = wait_and_kill(proc, cut, kill % 2 == 1, target)  # every other kill aims at a checkpoint write
    return when, "resuming at step" in proc.stderr.read()


def trial(processes: int, kills: int, rng: random.Random, params: Path, prep: Path, tmp: Path) -> bool:
    import torch

    ref, cut = tmp / f"ref{processes}", tmp / f"cut{processes}"
    t = time.time()
    subprocess.run(
        command(processes, params, prep, ref),
        cwd=REPO,
        env=environment(processes),
        check=True,
        stderr=subprocess.DEVNULL,
    )
    print(f"{processes} process(es): uninterrupted run {time.time() - t:.1f} s, {PRETRAIN['max_steps']} steps")
    resumed = 0
    for k in range(kills):
        when, did_resume = run_killed(processes, k, rng, params, prep, cut)
        resumed += did_resume and k > 0
        n, bad = checkpoints_load(cut)
        print(
            f"  kill {k + 1}: {when or 'none: the run ended first'}; {n} checkpoints on disk, {len(bad)} fail "
            f"to load {bad or ''}",
            flush=True,
        )
        if bad or when is None:
            return False
    p = subprocess.run(
        command(processes, params, prep, cut),
        cwd=REPO,
        env=environment(processes),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    resumed += p.returncode == 0 and "resuming at step" in p.stderr
    same_weights = p.returncode == 0 and all(
        torch.equal(v, final_weights(cut)[k]) for k, v in final_weights(ref).items()
    )
    same_curve = p.returncode == 0 and loss_curve(cut) == loss_curve(ref)
    leftovers = sorted(q.name for q in (cut / "model" / "checkpoints").iterdir() if q.name.startswith("."))
    print(
        f"  {resumed} of {kills} resumed; final weights bit-identical: {same_weights}; loss curve identical: "
        f"{same_curve} ({len(loss_curve(cut))} rows); temporaries left: {leftovers or 'none'}",
        flush=True,
    )
    return resumed == kills and same_weights and same_curve and not leftovers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--processes", default="1,2", help="comma-separated process counts (2 = torchrun, gloo)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prep = prepare(tmp)
        params = tmp / "params.yaml"
        params.write_text(yaml.safe_dump({"model": MODEL, "pretrain": PRETRAIN}))
        ok = [trial(int(n), args.kills, rng, params, prep, tmp) for n in args.processes.split(",")]
    print("all resumed to the uninterrupted run" if all(ok) else "FAILED: see above")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
