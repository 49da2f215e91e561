"""A full disk: outputs written to a small full tmpfs fail with one line naming the path, and the
previous output stays byte-identical (needs root and mount permission; skipped elsewhere)."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import helpers
from conftest import REPO
from helpers import env


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.decode().strip()}")


def fill(where: Path, leave: int = 0) -> None:
    """Write zeros until the filesystem is full, then free ``leave`` bytes again."""
    try:
        with open(where / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError:
        pass  # full (at a write or at the final flush)
    filler = where / "filler"
    os.truncate(filler, max(0, filler.stat().st_size - leave))


def snapshot(path: Path) -> dict:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture
def disk(tmp_path):
    where = tmp_path / "disk"
    mount_tmpfs(where, "4m")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def elmo(*args):
    return helpers.elmo(*map(str, args), cwd=REPO)


def test_full_disk_is_one_line_and_the_previous_output_survives(trained, disk, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("the minister said .\n" * 2000)
    ner = REPO / "data" / "samples" / "ner"
    shutil.copytree(trained / "enc", disk / "enc")  # an earlier export, to be replaced
    (tmp_path / "few.txt").write_text("the minister said .\n" * 5)
    assert (
        elmo("-q", "embed", tmp_path / "few.txt", "--encoder", trained / "enc", "--out", disk / "v.h5").returncode == 0
    )
    (disk / "m.json").write_text('{"written_by": "elmo-pipeline", "earlier": 1}\n')
    outputs = {
        "export": (disk / "enc", ["export", trained / "model" / "best", disk / "enc", "--prepared", trained / "prep"]),
        "embed": (disk / "v.h5", ["embed", text, "--encoder", trained / "enc", "--out", disk / "v.h5"]),
        "finetune": (
            disk / "m.json",
            [
                "finetune",
                "--task",
                "ner",
                "--train",
                ner / "train.conll",
                "--dev",
                ner / "dev.conll",
                "--encoder",
                trained / "enc",
                "--inputs",
                "elmo",
                "--epochs",
                "1",
                "--out",
                disk / "ner",
                "--metrics",
                disk / "m.json",
            ],
        ),
    }
    before = {name: snapshot(out) for name, (out, _) in outputs.items() if out.exists()}
    fill(disk)
    for name, (out, args) in outputs.items():
        p = elmo("-q", *args)
        assert p.returncode == 1 and "Traceback" not in p.stderr, (name, p.stderr)
        line = p.stderr.strip()
        assert "\n" not in line and line.startswith("error: ") and "no space left on the device" in line, (name, line)
        assert str(disk) in line, (name, line)  # names the path it could not write
        if name in before:
            assert snapshot(out) == before[name], name
        leftovers = [q.name for q in disk.iterdir() if q.name.startswith(".") and not q.name.endswith(".lock")]
        assert leftovers == [], (name, leftovers)


def test_pretraining_on_a_full_disk_stops_with_one_line_and_keeps_its_last_checkpoint(twenty, disk, tmp_path):
    model = dict(filters=[[1, 4], [2, 4]], n_highway=1, projection_dim=16, cell_dim=32)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": model,
                "pretrain": dict(max_tokens=300, max_steps=4, eval_every=2, checkpoint_every=2, keep_checkpoints=5),
            }
        )
    )
    out = disk / "run"
    args = [
        "stages/pretrain.py",
        "--params",
        params,
        "--prepared",
        twenty,
        "--out",
        out,
        "--metrics",
        tmp_path / "m.json",
        "--plots",
        tmp_path / "plots",
        "-q",
    ]
    assert subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env()).returncode == 0
    first = snapshot(out)
    params.write_text(params.read_text().replace("max_steps: 4", "max_steps: 8"))
    fill(disk, leave=64 * 1024)  # room for the lock, not for the next checkpoint (~350 kB)
    p = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env(), capture_output=True, text=True)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no space left on the device" in last, last
    assert f"{out}/best" in last or f"{out}/checkpoints/step-" in last, last  # mid-run: the model it was writing
    assert snapshot(out) == first  # best/ and the earlier checkpoints are untouched, no temporaries left
