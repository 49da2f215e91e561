"""Finetuning checkpoints: a run killed (SIGKILL) or stopped (SIGTERM) and started again with the same
command ends with the same model as an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from conftest import REPO
from helpers import env

SAMPLES = REPO / "data" / "samples"


def command(vectors: Path, out: Path, ckpt: Path) -> list[str]:
    ner = SAMPLES / "ner"
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "finetune",
        "--task",
        "ner",
        "--train",
        str(ner / "train.conll"),
        "--dev",
        str(ner / "dev.conll"),
        "--test",
        str(ner / "test.conll"),
        "--inputs",
        "word2vec",
        "--word2vec",
        str(vectors),
        "--out",
        str(out),
        "--epochs",
        "4",
        "--patience",
        "4",
        "--batch-size",
        "4",  # 100 batches an epoch: 0.2 s after epoch 1 ends is well inside epoch 2
        "--lr",
        "0.01",
        "--set",
        "head.hidden=16",
        "--checkpoint-dir",
        str(ckpt),
        "--metrics",
        str(out) + ".json",
        "-q",
    ]


def checkpoint_epoch(ckpt: Path) -> int:
    try:
        return json.loads((ckpt / "config.json").read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def stop_during_epoch_2(cmd: list[str], ckpt: Path, sig: int) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while checkpoint_epoch(ckpt) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)  # into epoch 2
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def same_model(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_killed_or_terminated_finetune_resumes_to_the_uninterrupted_model(vectors, tmp_path):
    full = tmp_path / "full"
    subprocess.run(command(vectors, full, tmp_path / "ck-full"), cwd=REPO, env=env(), check=True)
    reference = json.loads(Path(str(full) + ".json").read_text())

    for sig, code in ((signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143)):
        out, ckpt = tmp_path / f"cut-{sig}", tmp_path / f"ck-{sig}"
        cmd = command(vectors, out, ckpt)
        stopped = stop_during_epoch_2(cmd, ckpt, sig)
        assert stopped.returncode == code, stopped.stderr
        if sig == signal.SIGTERM:
            assert stopped.stderr.strip().splitlines()[-1] == "terminated (SIGTERM)"
            state = json.loads((ckpt / "config.json").read_text())
            assert state["epoch"] == 2 and state["batch_pos"] > 0  # saved where it stopped, mid-epoch
        again = subprocess.run(cmd[:-1], cwd=REPO, env=env(), capture_output=True, text=True)  # without -q
        assert again.returncode == 0, again.stderr
        assert "finetune: resuming at epoch 2" in again.stderr
        assert same_model(full, out)
        result = json.loads(Path(str(out) + ".json").read_text())
        assert result["test"] == reference["test"] and result["history"] == reference["history"]


def test_a_checkpoint_from_other_settings_is_not_resumed(vectors, tmp_path):
    ckpt = tmp_path / "ck"
    cmd = command(vectors, tmp_path / "a", ckpt)
    cmd[cmd.index("--epochs") + 1] = "1"
    subprocess.run(cmd, cwd=REPO, env=env(), check=True)
    other = command(vectors, tmp_path / "b", ckpt)
    other[other.index("--lr") + 1] = "0.02"
    p = subprocess.run(other[:-1], cwd=REPO, env=env(), capture_output=True, text=True)
    assert p.returncode == 0 and "is from other settings; starting afresh" in p.stderr


def test_a_damaged_finetune_checkpoint_is_one_line(vectors, tmp_path):
    out, ckpt = tmp_path / "m", tmp_path / "ck"
    cmd = command(vectors, out, ckpt)
    subprocess.run(
        cmd[: cmd.index("--epochs") + 1] + ["1"] + cmd[cmd.index("--epochs") + 2 :], cwd=REPO, env=env(), check=True
    )  # one epoch: the checkpoint of the same settings (but the budget) is resumable
    (ckpt / "optimizer.pt").write_bytes((ckpt / "optimizer.pt").read_bytes()[:50])
    before = (out / "model.safetensors").read_bytes()
    p = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(f"error: {ckpt}: damaged finetuning checkpoint")
    assert (out / "model.safetensors").read_bytes() == before
