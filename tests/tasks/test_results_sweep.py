"""scripts/finetune_results.py: the results-table sweep runs each row, resumes, and prints the table."""

import json
import subprocess
import sys

import pytest

from conftest import REPO

SAMPLES = REPO / "data" / "samples" / "sentiment"


def sweep(out, vectors, *extra):
    cmd = [
        sys.executable,
        "scripts/finetune_results.py",
        "--word2vec",
        str(vectors),
        "--tasks",
        "sst2",
        "--rows",
        "baseline",
        "word2vec",
        "--out",
        str(out),
        "--set",
        f"data.train={SAMPLES / 'train.tsv'}",
        "--set",
        f"data.dev={SAMPLES / 'dev.tsv'}",
        "--set",
        f"data.test={SAMPLES / 'test.tsv'}",
        "--set",
        "training.epochs=2",
        *extra,
    ]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_sweep_rows_resume_and_table(tmp_path, vectors):
    out = tmp_path / "results.json"
    printed = sweep(out, vectors, "--seeds", "0", "1")
    runs = json.loads(out.read_text())["runs"]
    # the TF-IDF baseline is deterministic: once, whatever the seeds; the model row once per seed
    assert sorted((r["row"], r["seed"]) for r in runs) == [("baseline", 0), ("word2vec", 0), ("word2vec", 1)]
    assert all(0 <= r["test"]["accuracy"] <= 1 and r["seconds"] >= 0 for r in runs)
    assert "| SST-2 | TF-IDF + logistic regression |" in printed and "| 1 (deterministic) |" in printed
    assert "| 2 |" in printed
    # resumed: runs already in the file are skipped, a new seed is added
    printed = sweep(out, vectors, "--seeds", "0", "1", "2")
    assert [line for line in printed.splitlines() if line.startswith("sst2 ")] == [printed.splitlines()[0]]
    assert printed.startswith("sst2 word2vec seed 2:")
    assert len(json.loads(out.read_text())["runs"]) == 4


def test_elmo_rows_record_their_encoder_and_resume_only_on_it(tmp_path, vectors, trained):  # noqa: F811
    out = tmp_path / "results.json"
    printed = sweep(out, vectors, "--rows", "both", "output", "--seeds", "0", "--encoder", str(trained / "enc"))
    runs = json.loads(out.read_text())["runs"]
    assert [r["row"] for r in runs] == ["both", "output"] and "output_scalar_mix" in runs[1]
    assert all(r["encoder_dir"] == str(trained / "enc") for r in runs)
    assert "| SST-2 | ours + ELMo at the input and the task BiLSTM's output |" in printed
    # the same rows with other overrides are other runs, not resumed ones
    sweep(out, vectors, "--rows", "both", "--seeds", "0", "--encoder", str(trained / "enc"), "--set", "head.hidden=8")
    assert len(json.loads(out.read_text())["runs"]) == 3


def test_files_from_before_rows_print_apart_and_are_not_resumed(tmp_path, vectors):
    out = tmp_path / "old.json"
    old_run = {
        "task_name": "sst2",
        "inputs": "both",
        "seed": 0,
        "seconds": 5.0,
        "dev": {"accuracy": 0.5},
        "test": {"accuracy": 0.25},
    }
    out.write_text(json.dumps({"runs": [old_run]}))
    p = subprocess.run(
        [sys.executable, "scripts/finetune_results.py", "--table", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert "| SST-2 | inputs=both (an earlier version of this script: see the README) | 50.00 | 25.00 |" in p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rows", "adapted"], "--adapted sst2=DIR"),
        (["--adapted", "sst2"], "--adapted sst2: expected TASK=DIR"),
        (["--adapted", "imdb=x"], "--adapted imdb=x: expected TASK=DIR"),
        (["--set", "inputs.use=elmo"], "--set inputs.use: set by the rows"),
    ],
)
def test_bad_sweep_options_are_one_line(tmp_path, vectors, args, message):
    cmd = [
        sys.executable,
        "scripts/finetune_results.py",
        "--tasks",
        "sst2",
        "--seeds",
        "0",
        "--out",
        str(tmp_path / "r.json"),
        "--word2vec",
        str(vectors),
        *args,
    ]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 1 and message in p.stderr and "Traceback" not in p.stderr, p.stderr
