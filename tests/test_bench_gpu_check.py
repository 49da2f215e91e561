"""bench/gpu_check.sh runs as it is on a bare GPU machine: here in its --dry-run mode (CPU, tiny
preset), on prepared sentences, with gensim, datasets, seqeval and scikit-learn made unimportable."""

import os
import subprocess
import sys
from pathlib import Path

from pipeline.config import PrepareConfig
from pipeline.data.prepare import prepare_corpus
from tests.helpers import make_corpus

REPO = Path(__file__).resolve().parent.parent
ABSENT_THERE = ["gensim", "datasets", "seqeval", "sklearn", "tqdm"]


def test_gpu_check_dry_run_writes_its_table_without_the_cpu_only_packages(tmp_path):
    (tmp_path / "corpus.txt").write_text(make_corpus(300))
    prepare_corpus(PrepareConfig(corpus=str(tmp_path / "corpus.txt")), tmp_path / "prep", progress=False)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ABSENT_THERE:
        (blocked / f"{name}.py").write_text(f"raise ImportError('{name} is not on the GPU machine')\n")
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "BENCH_DATA": str(tmp_path / "prep"),
        "OUT": str(tmp_path),
        "PYTHONPATH": str(blocked),
    }
    r = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = (tmp_path / "gpu_check.txt").read_text().splitlines()
    assert "bf16 matmul peak" in report[0]
    row = next(line for line in report if line.startswith("tiny"))
    ours, base = (float(v.replace(",", "")) for v in row.split()[3:5])
    assert ours > 0 and base > 0


def test_gpu_check_without_prepared_data_says_what_to_run(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "BENCH_DATA": str(tmp_path / "none"), "OUT": str(tmp_path)}
    r = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "make bench-data" in r.stderr
