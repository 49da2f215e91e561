"""The linear classifiers (TF-IDF; TF-IDF + pooled ELMo) and ``model: auto``: first-class model
directories, no pickle."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import FinetuneConfig, with_values
from pipeline.errors import PipelineError
from pipeline.tasks.kinds import task_named
from pipeline.tasks.models import load_task_model
from pipeline.train.finetune import finetune

from conftest import REPO
from helpers import finetune_cfg

SAMPLES = REPO / "data" / "samples" / "sentiment"


def test_fit_save_load_predict(tmp_path):
    cfg = finetune_cfg(
        task="classify",
        model="tfidf",
        train=str(SAMPLES / "train.tsv"),
        dev=str(SAMPLES / "dev.tsv"),
        test=str(SAMPLES / "test.tsv"),
    )
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["test"]["accuracy"] > 0.7 and result["C"] in [h["C"] for h in result["history"]]
    model = load_task_model(tmp_path / "m")
    data = task_named(cfg.task).read(cfg, cfg.data.test)
    again = model.predict(data.sentences + [[]])
    assert again[-1] == (None, {})
    assert [p for p, _ in again[:-1]] == [p for p, _ in result["test_predictions"]]
    assert all(np.isclose(a[1][k], b[1][k]) for a, b in zip(again, result["test_predictions"]) for k in a[1])
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "tfidf_vocab.json",
    ]
    assert json.loads((tmp_path / "m" / "config.json").read_text())["finetune"]["model"] == "tfidf"


def test_a_model_saved_in_the_flat_format_3_loads_with_its_keys_in_sections(tmp_path):
    cfg = sample_cfg(model="tfidf", **{"data.label_field": "label", "training.seed": 3})
    finetune(cfg, tmp_path / "m", progress=False)
    config_file = tmp_path / "m" / "config.json"
    config = json.loads(config_file.read_text())
    assert config["format_version"] == 4 and config["finetune"]["data"]["label_field"] == "label"
    flat = {k: v for k, v in config["finetune"].items() if not isinstance(v, dict)}
    for section in ("data", "head", "training"):
        flat |= config["finetune"][section]
    flat |= {k: v for k, v in config["finetune"]["inputs"].items() if k != "use"} | {"inputs": "both"}
    config_file.write_text(json.dumps({**config, "format_version": 3, "finetune": flat}))  # as format 3 wrote it
    old = load_task_model(tmp_path / "m")
    assert old.cfg == cfg
    sentences = [["a", "fine", "film"], ["dull"]]
    assert old.predict(sentences) == load_task_model(tmp_path / "m").predict(sentences)
    flat["lr"] = "fast"  # a format-3 file with a bad value names the key where it now lives
    config_file.write_text(json.dumps({**config, "format_version": 3, "finetune": flat}))
    with pytest.raises(PipelineError, match=r"config\.json: finetune\.training\.lr: expected float"):
        load_task_model(tmp_path / "m")


def test_cli_finetune_predict_evaluate(tmp_path):
    def elmo(*args):
        return subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *map(str, args)], capture_output=True, text=True, cwd=tmp_path
        )

    # no --task: a training file of one sentence per line means classify, and one line says so
    # (here before the missing default encoder stops the run)
    data = ["--train", SAMPLES / "train.tsv", "--dev", SAMPLES / "dev.tsv"]
    p = elmo("finetune", *data, "--out", "m")
    assert p.returncode == 1 and "models/encoder: directory not found" in p.stderr
    assert p.stderr.startswith("task: classify (") and "holds one example per line" in p.stderr
    # a model that only classifies names the task
    p = elmo("finetune", "--model", "tfidf", *data, "--out", "m")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "m" / "config.json").read_text())["task"] == "classify"
    (tmp_path / "in.txt").write_text("a superb and moving film\n\n")
    p = elmo("predict", "in.txt", "--model", "m")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert p.returncode == 0 and rows[0]["label"] in ("positive", "negative") and rows[1]["label"] is None
    assert "hold a tab" not in p.stderr
    stdin = subprocess.run(  # `-` reads the sentences from standard input
        [sys.executable, "-m", "pipeline.cli", "predict", "-", "--model", "m"],
        input="a superb and moving film\n\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert stdin.returncode == 0 and stdin.stdout == p.stdout, stdin.stderr
    # a labelled TSV given to predict: every line still predicted, and one warning line says what happened
    p = elmo("predict", str(SAMPLES / "test.tsv"), "--model", "m")
    n = len(SAMPLES.joinpath("test.tsv").read_text().splitlines())
    assert p.returncode == 0 and len(p.stdout.splitlines()) == n
    assert "lines hold a tab; each whole line was read as one sentence" in p.stderr and "elmo evaluate" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = elmo("evaluate", str(SAMPLES / "test.tsv"), "--model", "m")
    assert p.returncode == 0 and "accuracy" in p.stdout
    p = elmo("finetune", "--task", "ner", "--set", "model=tfidf", "--train", "x", "--dev", "y", "--out", "n")
    assert p.returncode == 1 and "model: tfidf does not learn task ner (models for ner: auto, bilstm" in p.stderr


def sample_cfg(**kw) -> FinetuneConfig:
    return finetune_cfg(
        task="classify",
        train=str(SAMPLES / "train.tsv"),
        dev=str(SAMPLES / "dev.tsv"),
        test=str(SAMPLES / "test.tsv"),
        **kw,
    )


def test_linear_uses_the_biLM_and_round_trips(tmp_path, trained):
    cfg = sample_cfg(model="linear", encoder=str(trained / "enc"), inputs="elmo")
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["model"] == "linear" and result["test"]["accuracy"] > 0.6
    model = load_task_model(tmp_path / "m")
    assert model.elmo is not None and model.elmo.mean.shape == (model.elmo.dim,)
    assert (tmp_path / "m" / "encoder" / "config.json").is_file()
    data = task_named(cfg.task).read(cfg, cfg.data.test, model.tokenize)
    again = model.predict(data.sentences)
    assert [p for p, _ in again] == [p for p, _ in result["test_predictions"]]
    # raw strings are tokenized like the encoder does; token lists are taken as they are
    text = " ".join(data.sentences[0])
    assert model.predict([text])[0][0] == model.predict([model.tokenize(text)])[0][0] == again[0][0]
    # the pooled block: every layer, mean and max, standardised on train
    x = model.elmo.transform(data.sentences[:3])
    assert x.shape == (3, 2 * 3 * 2 * 16) and np.isfinite(x).all()


def test_linear_needs_an_encoder():
    import pytest

    from pipeline.errors import PipelineError
    from pipeline.tasks.models import check_model

    with pytest.raises(PipelineError, match="linear pools the biLM"):
        check_model(sample_cfg(model="linear", inputs="word2vec", word2vec="v.bin"), "test")


def test_auto_keeps_the_best_dev_candidate(tmp_path, trained, vectors):
    cfg = sample_cfg(model="auto", encoder=str(trained / "enc"), word2vec=str(vectors), epochs=3)
    result = finetune(cfg, tmp_path / "m", progress=False)
    cands = result["candidates"]
    assert list(cands) == ["tfidf", "linear", "bilstm", "ensemble"]
    best = max(c["dev"] for c in cands.values())
    assert result["dev"]["accuracy"] == best >= cands["tfidf"]["dev"]  # never below TF-IDF on dev
    assert cands[result["model"]]["dev"] == best
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["finetune"]["model"] == result["model"] and config["candidates"] == cands
    assert "kept by `model: auto`, the best dev accuracy among: tfidf" in (tmp_path / "m" / "README.md").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # the candidates' directory is gone
    model = load_task_model(tmp_path / "m")
    assert model.predict(["a superb and moving film", []])[1] == (None, {})


def test_auto_bounds_the_bilstm_by_the_quick_candidates_and_picks_by_macro_f1_when_imbalanced(tmp_path, trained):
    rows = (SAMPLES / "train.tsv").read_text().splitlines()
    neutral = [r for r in rows[1:] if r.startswith("neutral")]
    kept = [rows[0]] + [r for r in rows[1:] if not r.startswith("neutral")] + neutral[:40]  # 148 : 147 : 40
    (tmp_path / "train.tsv").write_text("\n".join(kept) + "\n")
    cfg = sample_cfg(model="auto", encoder=str(trained / "enc"), inputs="elmo", epochs=200, min_epochs=200)
    cfg = with_values(cfg, {"data": {"train": str(tmp_path / "train.tsv")}, "training": {"auto_budget": 1.0}})
    said: list[str] = []
    result = finetune(cfg, tmp_path / "m", tmp_path / "plots", progress=True, log=said.append)
    assert any("imbalanced" in s and "picked by dev macro_f1, not accuracy" in s for s in said), said
    # auto ends within 1x the time of tfidf and linear: nothing is left for the BiLSTM; said and recorded
    assert any(s.startswith("auto: candidate bilstm skipped: no time is left") for s in said), said
    assert list(result["candidates"]) == ["tfidf", "linear", "ensemble"]
    assert "auto_budget 1 x" in result["skipped"]["bilstm"]
    picked = max(result["candidates"].values(), key=lambda c: c["dev_macro_f1"])
    assert result["selected_on"] == "macro_f1" and result["dev"]["macro_f1"] == picked["dev_macro_f1"]
    assert "the best dev macro_f1 among: tfidf" in (tmp_path / "m" / "README.md").read_text()
    balanced = task_named("classify").read(cfg, SAMPLES / "train.tsv")
    assert task_named("classify").selection_metric(balanced) == "accuracy"  # 148 : 147 : 105


def test_ensemble_averages_its_members_and_round_trips(tmp_path, trained, vectors):
    cfg = sample_cfg(model="ensemble", encoder=str(trained / "enc"), word2vec=str(vectors), epochs=2)
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["model"] == "ensemble" and result["candidates"]["ensemble"]["dev"] == result["dev"]["accuracy"]
    model = load_task_model(tmp_path / "m")
    assert list(model.members) == ["tfidf", "linear", "bilstm"]
    assert sorted(p.name for p in (tmp_path / "m" / "members").iterdir()) == ["bilstm", "linear", "tfidf"]
    data = task_named(cfg.task).read(cfg, cfg.data.test, model.tokenize)
    pred = model.predict(data.sentences[:5])
    each = [m.predict(data.sentences[:5]) for m in model.members.values()]
    for i, (label, probs) in enumerate(pred):
        for k in probs:
            assert np.isclose(probs[k], sum(e[i][1][k] for e in each) / 3)
        assert label == max(probs, key=probs.get)
    assert [p for p, _ in model.predict(data.sentences)] == [p for p, _ in result["test_predictions"]]
    # the CLI reads it like any task model
    (tmp_path / "in.txt").write_text("a superb and moving film.\n")
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "predict", "in.txt", "--model", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and json.loads(p.stdout)["tokens"] == ["a", "superb", "and", "moving", "film", "."]
    p = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "evaluate", str(SAMPLES / "test.tsv"), "--model", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and f"accuracy {result['test']['accuracy']:.4f}" in p.stdout, p.stderr


def test_control_characters_are_read_and_counted(tmp_path):
    rows = (SAMPLES / "train.tsv").read_text(encoding="utf-8").splitlines()
    rows[1] = rows[1].replace(" ", " \u0097 ", 1)  # a cp1252 dash decoded as Latin-1 upstream
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    said = []
    cfg = finetune_cfg(task="classify", model="tfidf", train=str(tmp_path / "t.tsv"), dev=str(SAMPLES / "dev.tsv"))
    result = finetune(cfg, tmp_path / "m", progress=False, log=said.append)
    assert result["data"]["controls_as_space"] == 1
    assert said[0] == f"note: {tmp_path / 't.tsv'}: 1 lines had control characters, read as spaces"


def test_a_time_budget_stops_the_bilstm_before_an_epoch_that_would_pass_it(tmp_path, trained):
    cfg = sample_cfg(model="bilstm", encoder=str(trained / "enc"), inputs="elmo", epochs=500, patience=500)
    cfg = with_values(cfg, {"training": {"max_minutes": 0.05}})  # 3 s
    said: list[str] = []
    result = finetune(cfg, tmp_path / "m", progress=False, log=said.append)
    assert result["stopped_by"] == "max_minutes" and 1 <= result["epochs_run"] < 500
    assert any(s.startswith("finetune: stopped by the time budget (3.0 s): another epoch (~") for s in said), said
    assert "stopped_by" in json.loads((tmp_path / "m" / "config.json").read_text())
