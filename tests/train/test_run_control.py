"""Stopping a pretraining run from outside: SIGTERM (final checkpoint, then resume), a second run on
the same output (refused), a killed launcher (no trainer left behind)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from pipeline.io import lock_file

from conftest import REPO
from helpers import env

SMALL = dict(filters=[[1, 4], [2, 4], [3, 8]], n_highway=1, projection_dim=32, cell_dim=64, dropout=0.2)


def params(tmp_path: Path, **over) -> Path:
    pre = {
        **dict(
            max_tokens=300,
            epochs=1000,
            max_steps=60,
            lr=0.005,
            eval_every=20,
            checkpoint_every=20,
            keep_checkpoints=3,
            log_every=5,
            seed=3,
        ),
        **over,
    }
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"model": SMALL, "pretrain": pre}))
    return p


def stage(p: Path, prep: Path, out: Path) -> list[str]:
    return [
        "stages/pretrain.py",
        "--params",
        str(p),
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


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not path.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert path.exists() and proc.poll() is None, f"{path} never appeared while the run was going"


def test_sigterm_writes_a_checkpoint_at_that_step_and_the_resumed_run_ends_identical(twenty, tmp_path):
    p = params(tmp_path)
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run([sys.executable, *stage(p, twenty, full)], cwd=REPO, env=env(), check=True)
    proc = subprocess.Popen(
        [sys.executable, *stage(p, twenty, cut)], cwd=REPO, env=env(), stderr=subprocess.PIPE, text=True
    )
    wait_for(cut / "model" / "checkpoints" / "step-0000020", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "terminated (SIGTERM)"
    steps = sorted(int(d.name.split("-")[1]) for d in (cut / "model" / "checkpoints").iterdir())
    last_logged = int((cut / "plots" / "train.tsv").read_text().splitlines()[-1].split("\t")[0])
    assert steps[-1] == last_logged and 20 <= steps[-1] < 60  # the step it stopped at, not the last period
    assert not lock_file(cut / "model").exists()
    subprocess.run([sys.executable, *stage(p, twenty, cut)], cwd=REPO, env=env(), check=True)
    assert json.loads((cut / "metrics.json").read_text())["resumed_from_step"] == steps[-1]
    a = load_file(str(full / "model" / "checkpoints" / "step-0000060" / "model.safetensors"))
    b = load_file(str(cut / "model" / "checkpoints" / "step-0000060" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def trainers_writing(out: Path) -> list[int]:
    """PIDs of processes whose command line names ``out``."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(out).encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_killing_the_launcher_ends_its_trainer_and_a_second_run_is_refused_meanwhile(twenty, tmp_path):
    p = params(tmp_path, max_steps=100_000, max_minutes=5)
    out = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train.launch", *stage(p, twenty, out)],
        cwd=REPO,
        env=env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(out / "model" / "checkpoints" / "step-0000020", launcher)
        holder = int(lock_file(out / "model").read_text())
        assert holder != launcher.pid and holder in trainers_writing(out)  # the trainer holds it
        second = subprocess.run(
            [sys.executable, *stage(p, twenty, out)], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines()[-1] == (
            f"error: {out / 'model'}: another run is writing it (PID {holder}; lock {lock_file(out / 'model')}); "
            "wait for it to end, or stop it"
        )
        os.kill(launcher.pid, signal.SIGKILL)  # only the launcher: its own session, not its group
        launcher.wait()
        deadline = time.time() + 60
        while trainers_writing(out) and time.time() < deadline:
            time.sleep(0.1)
        assert trainers_writing(out) == []
    finally:
        for pid in trainers_writing(out):
            os.kill(pid, signal.SIGKILL)


def test_the_launcher_passes_a_refusal_on_as_one_line_and_the_trainers_exit_code(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.train.launch",
            "stages/pretrain.py",
            "--prepared",
            str(tmp_path / "missing"),
            "--out",
            str(out / "model"),
            "--metrics",
            str(out / "m.json"),
            "--plots",
            str(out / "plots"),
        ],
        cwd=REPO,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing'}: not a prepared-data directory (no meta.json; run the prepare stage)"
    ]


def test_sigint_to_the_launcher_alone_stops_the_trainer_cleanly(twenty, tmp_path):
    p = params(tmp_path, max_steps=100_000, max_minutes=5)
    out = tmp_path / "run"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "pipeline.train.launch", *stage(p, twenty, out)],
        cwd=REPO,
        env=env(),
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(out / "model" / "checkpoints" / "step-0000020", launcher)
        os.kill(launcher.pid, signal.SIGINT)  # `kill -INT <launcher>`: not the terminal's Ctrl-C to the group
        _, err = launcher.communicate(timeout=120)
        assert launcher.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
        assert trainers_writing(out) == [] and not lock_file(out / "model").exists()
    finally:
        for pid in trainers_writing(out):
            os.kill(pid, signal.SIGKILL)
