"""scripts/finetune_results.py: the results-table sweep runs each row, resumes, and prints the table."""
import json
import subprocess
import sys

from conftest import REPO

SAMPLES = REPO / "data" / "samples" / "sentiment"


def sweep(out, vectors, *extra):
    cmd = [sys.executable, "scripts/finetune_results.py", "--word2vec", str(vectors), "--tasks", "sst2",
           "--rows", "baseline", "word2vec", "--out", str(out), "--set", f"train={SAMPLES / 'train.tsv'}",
           "--set", f"dev={SAMPLES / 'dev.tsv'}", "--set", f"test={SAMPLES / 'test.tsv'}", "--set", "epochs=2", *extra]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_sweep_rows_resume_and_table(tmp_path, vectors):
    out = tmp_path / "results.json"
    printed = sweep(out, vectors, "--seeds", "0", "1")
    runs = json.loads(out.read_text())["runs"]
    # the TF-IDF baseline is deterministic: once, whatever the seeds; the model row once per seed
    assert sorted((r["row"], r["seed"]) for r in runs) == [("baseline", 0), ("word2vec", 0), ("word2vec", 1)]
    assert all(0 <= r["test"]["accuracy"] <= 1 and r["seconds"] > 0 for r in runs)
    assert "| SST-2 | TF-IDF + logistic regression |" in printed and "| 2 |" in printed
    # resumed: runs already in the file are skipped, a new seed is added
    printed = sweep(out, vectors, "--seeds", "0", "1", "2")
    assert [line for line in printed.splitlines() if line.startswith("sst2 ")] == [printed.splitlines()[0]]
    assert printed.startswith("sst2 word2vec seed 2:")
    assert len(json.loads(out.read_text())["runs"]) == 4


def test_adapted_row_needs_its_encoder(tmp_path, vectors):
    cmd = [sys.executable, "scripts/finetune_results.py", "--tasks", "sst2", "--rows", "adapted",
           "--seeds", "0", "--out", str(tmp_path / "r.json"), "--word2vec", str(vectors)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 1 and "--adapted sst2=DIR" in p.stderr and "Traceback" not in p.stderr
