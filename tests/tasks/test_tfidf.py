"""The TF-IDF + logistic regression classifier: a first-class model directory, no pickle."""
import json
import subprocess
import sys

import numpy as np

from conftest import REPO
from pipeline.config import FinetuneConfig
from pipeline.tasks.data import read_task_data
from pipeline.tasks.model import TaskModel
from pipeline.train.finetune import finetune

SAMPLES = REPO / "data" / "samples" / "sentiment"


def test_fit_save_load_predict(tmp_path):
    cfg = FinetuneConfig(task="classify", model="tfidf", train=str(SAMPLES / "train.tsv"),
                         dev=str(SAMPLES / "dev.tsv"), test=str(SAMPLES / "test.tsv"))
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["test"]["accuracy"] > 0.7 and result["C"] in [h["C"] for h in result["history"]]
    model = TaskModel.load(tmp_path / "m")
    data = read_task_data(cfg, cfg.test)
    again = model.predict(data.sentences + [[]])
    assert again[-1] == (None, {})
    assert [p for p, _ in again[:-1]] == [p for p, _ in result["test_predictions"]]
    assert all(np.isclose(a[1][k], b[1][k]) for a, b in zip(again, result["test_predictions"]) for k in a[1])
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                                   "tfidf_vocab.json"]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["finetune"]["model"] == "tfidf"


def test_cli_finetune_predict_evaluate(tmp_path):
    def elmo(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                              cwd=tmp_path)

    p = elmo("-q", "finetune", "--task", "classify", "--set", "model=tfidf", "--train", str(SAMPLES / "train.tsv"),
             "--dev", str(SAMPLES / "dev.tsv"), "--out", "m")
    assert p.returncode == 0, p.stderr
    (tmp_path / "in.txt").write_text("a superb and moving film\n\n")
    p = elmo("predict", "in.txt", "--model", "m")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and rows[0]["label"] in ("positive", "negative") and rows[1]["label"] is None
    p = elmo("evaluate", str(SAMPLES / "test.tsv"), "--model", "m")
    assert p.returncode == 0 and "accuracy" in p.stdout
    p = elmo("finetune", "--task", "ner", "--set", "model=tfidf", "--train", "x", "--dev", "y", "--out", "n")
    assert p.returncode == 1 and "tfidf is a sentence classifier" in p.stderr
