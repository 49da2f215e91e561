import json

import numpy as np
import yaml

from pipeline.data.corpus import read_corpus

from helpers import BIN, copy_repo, elmo, make_corpus, run


def _repo_with_corpus(tmp_path, n=120, **word2vec):
    repo = copy_repo(tmp_path)
    (repo / "data" / "raw" / "corpus.txt").write_text(make_corpus(n))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"] = dict(corpus="data/raw/corpus.txt", valid_fraction=0.1, test_fraction=0.1, min_count=1)
    params["word2vec"] = word2vec
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    return repo


def test_dvc_repro_prepare_in_a_copy_of_the_repo(tmp_path):
    repo = _repo_with_corpus(tmp_path)

    p = run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True)
    assert "Running stage 'prepare'" in p.stdout
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    meta = json.loads((repo / "data" / "prepared" / "meta.json").read_text())
    assert metrics == {"written_by": "elmo-pipeline", "output": "prepare statistics", **meta["stats"]}
    assert metrics["train_sentences"] + metrics["valid_sentences"] + metrics["test_sentences"] == 120
    assert meta["config"]["corpus"] == "data/raw/corpus.txt"
    # up to date until a param or the corpus changes
    assert "didn't change" in run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True).stdout
    (repo / "data" / "raw" / "corpus.txt").write_text(make_corpus(60))
    run([str(BIN / "dvc"), "repro", "prepare"], cwd=repo, check=True)
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert metrics["train_sentences"] + metrics["valid_sentences"] + metrics["test_sentences"] == 60
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=repo, check=True).stdout
    assert "train_tokens" in shown


def test_cli_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text("prepare:\n  corpus: missing.txt\n")
    p = elmo("prepare", "--params", "params.yaml", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.strip() == "error: missing.txt: corpus file not found"
    (tmp_path / "params.yaml").write_text("prepare:\n  min_count: lots\n")
    p = elmo("config", cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "params.yaml: prepare.min_count: expected int" in p.stderr
    p = elmo("no-such-command", cwd=tmp_path)
    assert p.returncode == 2


def test_cli_prepare_writes_outputs(tmp_path):
    (tmp_path / "c.txt").write_text(make_corpus(80))
    (tmp_path / "params.yaml").write_text("prepare:\n  corpus: c.txt\n  valid_fraction: 0.2\n  test_fraction: 0.2\n")
    p = elmo("-q", "prepare", "--out", "prep", "--metrics", "m.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""  # quiet
    assert json.loads((tmp_path / "m.json").read_text())["train_sentences"] > 0
    assert (tmp_path / "prep" / "train" / "tokens-00000.npy").exists()


def test_dvc_repro_word2vec(tmp_path):
    repo = _repo_with_corpus(tmp_path, n=300, epochs=2, format="text", probe_words=["cat", "nosuchword"])
    run([str(BIN / "dvc"), "repro", "word2vec"], cwd=repo, check=True)
    metrics = json.loads((repo / "metrics" / "word2vec.json").read_text())
    for key in (
        "analogy_accuracy",
        "analogy_semantic",
        "analogy_syntactic",
        "analogy_oov_rate",
        "wordsim353_spearman",
        "wordsim353_oov_rate",
        "simlex999_spearman",
        "simlex999_oov_rate",
        "train_words_per_sec",
        "vocab_coverage",
    ):
        assert key in metrics
    assert metrics["vocab_coverage"] == 1.0  # every word of this corpus is frequent enough
    out = repo / "data" / "word2vec"
    n_vocab = len((repo / "data" / "prepared" / "vocab.txt").read_text().splitlines())
    assert np.load(out / "embeddings.npy").shape == (n_vocab, 100)
    assert (out / "vectors.txt").read_text().split("\n", 1)[0] == f"{n_vocab - 4} 100"  # specials not trained
    report = (repo / "reports" / "word2vec_neighbours.txt").read_text().splitlines()
    assert report[0] == "# elmo-pipeline: word2vec nearest neighbours"  # the mark: a rerun may replace it
    assert report[1].startswith("cat: ") and report[2] == "nosuchword: (not in vocabulary)"
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=repo, check=True).stdout
    # accuracies and spearman are null here (no question or pair in this toy vocabulary), so not shown
    assert "analogy_oov_rate" in shown and "simlex999_oov_rate" in shown


def test_cli_word2vec_eval(tmp_path):
    (tmp_path / "v.txt").write_text("3 2\nman 1 0\nwoman 0 1\nking 1 1\n")
    (tmp_path / "q.txt").write_text(": family\nman woman king queen\nman woman king\n")
    p = elmo("word2vec-eval", "v.txt", "--analogies", "q.txt", "--json", "r.json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "malformed lines 1" in p.stdout
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["words"] == 3 and r["analogy"]["oov_rate"] == 1.0 and r["analogy"]["malformed_lines"] == 1
    (tmp_path / "bad.txt").write_text("not vectors\n")
    p = elmo("word2vec-eval", "bad.txt", cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.startswith("error: bad.txt:1: not word2vec format")
    assert "Traceback" not in p.stderr


def test_a_stage_run_by_a_python_without_the_project_says_so(tmp_path):
    """e.g. a `dvc` from another environment running the system python: one line, no traceback."""
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    from conftest import REPO

    base = Path(sys.base_prefix) / "bin" / "python3"
    has_all = subprocess.run([str(base), "-c", "import torch, pipeline"], cwd=tmp_path, capture_output=True)
    if not base.exists() or has_all.returncode == 0:
        pytest.skip("no Python without the project here")
    for cmd in (
        [str(base), str(REPO / "stages" / "prepare.py")],
        [str(base), "-m", "pipeline.train.launch", "stages/pretrain.py"],
    ):
        p = subprocess.run(cmd, cwd=tmp_path if "prepare" in cmd[1] else REPO, capture_output=True, text=True)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.startswith("error: ") and "source .venv/bin/activate" in p.stderr


def test_every_stage_runs_through_elmo(tmp_path):
    """prepare → word2vec → pretrain → evaluate-lm → export with the `elmo` front door alone."""
    lines = [line.text for line in read_corpus("default")][:60]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    params = {
        "prepare": {"corpus": "c.txt", "valid_fraction": 0.1, "test_fraction": 0.1, "min_count": 1},
        "word2vec": {"vector_size": 8, "epochs": 1, "min_count": 1},
        "model": {"filters": [[1, 4], [2, 4]], "projection_dim": 8, "cell_dim": 16},
        "pretrain": {"max_steps": 3, "eval_every": 3, "checkpoint_every": 3, "max_tokens": 500},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for args in (
        ["prepare", "--out", "data/prepared"],
        ["word2vec"],
        ["pretrain"],
        ["evaluate-lm"],
        ["export", "models/pretrain/best", "models/encoder"],
    ):
        p = run([str(BIN / "elmo"), "-q", *args], cwd=tmp_path)
        assert p.returncode == 0, (args, p.stderr)
    assert json.loads((tmp_path / "metrics" / "pretrain.json").read_text())["steps"] == 3
    assert json.loads((tmp_path / "metrics" / "evaluate_lm.json").read_text())["test_average_ppl"] > 1
    assert (tmp_path / "data" / "word2vec" / "embeddings.npy").is_file()
    assert (tmp_path / "reports" / "word2vec_neighbours.txt").is_file()
    assert (tmp_path / "models" / "encoder" / "model.safetensors").is_file()
