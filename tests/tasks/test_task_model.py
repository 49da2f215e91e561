"""Finetuned task models: training through the library, the CLI and DVC; save → load → predict;
bad labelled data; CRF constraints; the shipped samples."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from pipeline.config import with_values
from pipeline.encoder import Encoder
from pipeline.errors import PipelineError
from pipeline.tasks.crf import crf_constraints
from pipeline.tasks.examples import check_labels
from pipeline.tasks.kinds import task_named
from pipeline.tasks.models import load_task_model
from pipeline.train.finetune import finetune

from conftest import REPO
from helpers import BIN, SENTS, elmo, finetune_cfg, run, tiny_repo

SAMPLES = REPO / "data" / "samples"


def ner_cfg(trained, vectors, **kw):  # noqa: F811
    base = dict(
        task="ner",
        train=str(SAMPLES / "ner" / "train.conll"),
        dev=str(SAMPLES / "ner" / "dev.conll"),
        test=str(SAMPLES / "ner" / "test.conll"),
        encoder=str(trained / "enc"),
        word2vec=str(vectors),
        hidden=16,
        epochs=2,
        batch_size=16,
        lr=0.01,
    )
    base.update(kw)
    return finetune_cfg(**base)


def cls_cfg(trained, vectors, **kw):  # noqa: F811
    base = dict(
        task="classify",
        train=str(SAMPLES / "sentiment" / "train.tsv"),
        dev=str(SAMPLES / "sentiment" / "dev.tsv"),
        test=str(SAMPLES / "sentiment" / "test.tsv"),
        encoder=str(trained / "enc"),
        word2vec=str(vectors),
        hidden=16,
        epochs=2,
        batch_size=16,
        lr=0.01,
        model="bilstm",
    )
    base.update(kw)
    return finetune_cfg(**base)


def test_shipped_samples_match_their_generator():
    p = subprocess.run([sys.executable, "scripts/make_samples.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_crf_constraints_follow_the_scheme():
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed, start = crf_constraints(tags, "iob2")
    i = {t: k for k, t in enumerate(tags)}
    assert not allowed[i["O"], i["I-PER"]] and not allowed[i["B-LOC"], i["I-PER"]]
    assert allowed[i["B-PER"], i["I-PER"]] and allowed[i["I-PER"], i["I-PER"]] and allowed[i["I-PER"], i["B-LOC"]]
    assert start.tolist() == [True, True, False, True, False]
    tags = ["O", "B-X", "I-X", "E-X", "S-X"]
    allowed, start = crf_constraints(tags, "bioes")
    i = {t: k for k, t in enumerate(tags)}
    assert allowed[i["B-X"], i["I-X"]] and allowed[i["I-X"], i["E-X"]] and allowed[i["E-X"], i["O"]]
    assert not allowed[i["B-X"], i["O"]] and not allowed[i["O"], i["E-X"]] and not allowed[i["S-X"], i["I-X"]]


def test_label_sets_and_unseen_dev_labels(tmp_path):
    cfg = finetune_cfg(task="ner")
    train = task_named(cfg.task).read(cfg, SAMPLES / "ner" / "train.conll")
    labels = task_named(cfg.task).label_set(cfg, train)
    assert labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    (tmp_path / "dev.conll").write_text("Sydney B-LOC\n\nAcme B-COMPANY\nLtd I-COMPANY\n")
    dev = task_named(cfg.task).read(cfg, tmp_path / "dev.conll")
    with pytest.raises(PipelineError, match=r"dev\.conll:3: label 'B-COMPANY' does not occur in the training"):
        check_labels(dev, labels, task_named("ner").labels_in)
    c = finetune_cfg(task="classify")
    (tmp_path / "d.tsv").write_text("label\tsentence\npositive\tgood .\nsarcastic\tgreat , just great .\n")
    with pytest.raises(PipelineError, match=r"d\.tsv:3: label 'sarcastic'"):
        check_labels(
            task_named(c.task).read(c, tmp_path / "d.tsv"), ["negative", "positive"], task_named("classify").labels_in
        )


def test_encoder_layers_with_gradients_equal_embed(trained):  # noqa: F811
    enc = Encoder.from_pretrained(trained / "enc")
    ref = enc.embed(SENTS)
    enc.model.requires_grad_(True)  # loaded for use; training its weights turns their gradients on
    layers = enc.layers(SENTS)  # eval mode: no dropout
    assert layers.shape == (3, 3, 5, 32)
    for b, r in enumerate(ref):
        n = r.shape[1]
        assert np.allclose(layers[:, b, :n].detach().numpy(), r, atol=1e-5)
        assert (layers[:, b, n:] == 0).all()
    layers.sum().backward()
    assert all(
        p.grad is not None
        for n, p in enc.model.named_parameters()
        if n.startswith(("token_encoder.", "forward_stack.", "backward_stack."))
    )


def test_lookup_inputs_save_the_word2vec_vectors(trained, vectors, tmp_path):  # noqa: F811
    cfg = ner_cfg(trained, vectors, word_vectors="lookup", char_encoder="none", epochs=1)
    finetune(cfg, tmp_path / "m", progress=False)
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == [
        "README.md",
        "config.json",
        "encoder",
        "model.safetensors",
        "word2vec.safetensors",
        "word2vec.vocab.txt",
    ]
    model = load_task_model(tmp_path / "m")
    assert model.features.word2vec is not None and model.features.chars is None


@pytest.mark.parametrize("task", ["ner", "classify"])
def test_save_load_predict_identical(trained, vectors, tmp_path, task):  # noqa: F811
    cfg = (ner_cfg if task == "ner" else cls_cfg)(trained, vectors)
    result = finetune(cfg, tmp_path / "m", tmp_path / "plots", progress=False)
    model = load_task_model(tmp_path / "m")
    data = task_named(cfg.task).read(cfg, cfg.data.test, model.tokenize)
    again = model.predict(data.sentences + [[]])
    assert again[-1] == ([] if task == "ner" else (None, {}))
    # training cached the biLM layers in other batches than a fresh model computes them: the labels
    # are identical, probabilities agree to float rounding; two loads agree exactly
    if task == "ner":
        assert again[:-1] == result["test_predictions"]
    else:
        assert [p for p, _ in again[:-1]] == [p for p, _ in result["test_predictions"]]
        for (_, a), (_, b) in zip(again, result["test_predictions"]):
            assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)
    assert model.scores(data) == result["test"]
    assert load_task_model(tmp_path / "m").predict(data.sentences) == again[:-1]
    # the directory is self-contained: no pickle, the encoder and the word table inside
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["README.md", "config.json", "encoder", "model.safetensors", "words.txt"]
    # raw strings are tokenized as Encoder.embed does; anything else is refused in one line
    text = "John visited Paris, didn't he?"
    assert model.tokenize(text) == ["John", "visited", "Paris", ",", "did", "n't", "he", "?"]
    assert model.predict([text]) == model.predict([model.tokenize(text)])
    for bad, msg in ((text, "got one string"), ([["ok", 3]], "sentence 0: .* non-strings"), ([None], "got NoneType")):
        with pytest.raises(PipelineError, match=msg):
            model.predict(bad)
    lines = (tmp_path / "plots" / "dev.tsv").read_text().splitlines()
    assert lines[0].split("\t")[2] == ("f1" if task == "ner" else "accuracy") and len(lines) == 1 + result["epochs_run"]


@pytest.mark.parametrize("task", ["ner", "classify"])
def test_elmo_at_the_output_trains_saves_and_loads(trained, vectors, tmp_path, task):  # noqa: F811
    cfg = (ner_cfg if task == "ner" else cls_cfg)(trained, vectors, elmo_output=True)
    result = finetune(cfg, tmp_path / "m", progress=False)
    model = load_task_model(tmp_path / "m")
    assert model.features.output_mix is not None and model.features.output_dim == model.features.encoder.dim
    # a second mix of its own, trained (it starts uniform with gamma 1) apart from the input mix
    out_mix = model.features.output_mix
    assert out_mix.scalars.abs().max() > 0 and out_mix.gamma.item() != 1.0
    assert not torch.equal(out_mix.scalars, model.features.mix.scalars)
    assert len(result["output_scalar_mix"]["weights"]) == 3
    data = task_named(cfg.task).read(cfg, cfg.data.test, model.tokenize)
    again = model.predict(data.sentences)
    if task == "ner":
        assert again == result["test_predictions"]
    else:
        assert [p for p, _ in again] == [p for p, _ in result["test_predictions"]]
    with pytest.raises(PipelineError, match="elmo_output: needs ELMo"):
        with_values(cfg, {"inputs": {"use": "word2vec"}}).validate("x")


def test_same_seed_same_model(trained, vectors, tmp_path):  # noqa: F811
    cfg = cls_cfg(trained, vectors, inputs="word2vec")
    a = finetune(cfg, tmp_path / "a", progress=False)
    b = finetune(cfg, tmp_path / "b", progress=False)
    assert a["history"] == b["history"] and a["test_predictions"] == b["test_predictions"]
    c = finetune(cls_cfg(trained, vectors, inputs="word2vec", seed=1), tmp_path / "c", progress=False)
    assert c["history"] != a["history"]


def test_tagger_learns_the_ner_sample_well_above_chance(trained, vectors, tmp_path):  # noqa: F811
    cfg = ner_cfg(trained, vectors, epochs=20, patience=20, lr=0.01, elmo_dropout=0.0, dropout=0.1)
    r = finetune(cfg, tmp_path / "m", progress=False)
    assert r["test"]["f1"] > 0.4 and r["dev"]["f1"] > 0.4  # chance (random tags) is near 0; here ~0.59
    assert set(r["test"]["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    weights = r["scalar_mix"]["weights"]
    assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-3


def test_finetune_encoder_updates_and_saves_the_bilm(trained, vectors, tmp_path):  # noqa: F811
    cfg = cls_cfg(trained, vectors, inputs="elmo", finetune_encoder=True, epochs=1, encoder_lr=0.01)
    r = finetune(cfg, tmp_path / "m", progress=False)
    before = Encoder.from_pretrained(trained / "enc").model.state_dict()
    after = Encoder.from_pretrained(tmp_path / "m" / "encoder").model.state_dict()
    changed = [k for k in after if not torch.equal(before[k], after[k])]
    assert any(k.startswith("forward_stack") for k in changed) and any(k.startswith("token_encoder.") for k in changed)
    model = load_task_model(tmp_path / "m")
    data = task_named(cfg.task).read(cfg, cfg.data.test, model.tokenize)
    assert model.predict(data.sentences) == r["test_predictions"]


def test_cli_finetune_predict_evaluate(trained, vectors, tmp_path):  # noqa: F811
    out = tmp_path / "ner"
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        str(SAMPLES / "ner" / "train.conll"),
        "--dev",
        str(SAMPLES / "ner" / "dev.conll"),
        "--encoder",
        str(trained / "enc"),
        "--word2vec",
        str(vectors),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--set",
        "head.hidden=8",
        "--metrics",
        str(tmp_path / "m.json"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["inputs"] == "both" and m["epochs_run"] == 2 and "test_predictions" not in m
    assert json.loads((out / "config.json").read_text())["finetune"]["head"]["hidden"] == 8
    (tmp_path / "in.txt").write_text("John Howard visited Sydney .\n\nQantas said so .\n")
    p = elmo("predict", "--model", str(out), str(tmp_path / "in.txt"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["line"] for r in recs] == [1, 2, 3]
    assert recs[1] == {"line": 2, "tokens": [], "tags": [], "entities": []}
    assert recs[0]["tokens"] == ["John", "Howard", "visited", "Sydney", "."] and len(recs[0]["tags"]) == 5
    for e in recs[0]["entities"]:
        assert e["text"] == " ".join(recs[0]["tokens"][e["start"] : e["end"]])
    p = elmo(
        "evaluate",
        "--model",
        str(out),
        str(SAMPLES / "ner" / "test.conll"),
        "--metrics",
        str(tmp_path / "e.json"),
        cwd=tmp_path,
    )
    assert p.returncode == 0 and "F1" in p.stdout
    assert set(json.loads((tmp_path / "e.json").read_text())["per_type"]) <= {"PER", "LOC", "ORG", "MISC"}

    # a classifier from a config file; word2vec only (inferred from the options given)
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"task": "classify", "training": {"epochs": 2}, "head": {"hidden": 8, "pooling": "attention"}})
    )
    p = elmo(
        "finetune",
        "--config",
        str(tmp_path / "c.yaml"),
        "--train",
        str(SAMPLES / "sentiment" / "train.tsv"),
        "--dev",
        str(SAMPLES / "sentiment" / "dev.tsv"),
        "--test",
        str(SAMPLES / "sentiment" / "test.tsv"),
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "cls"),
        "--plots",
        str(tmp_path / "pl"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    conf = json.loads((tmp_path / "pl" / "confusion.json").read_text())
    assert len(conf) == 100 and set(conf[0]) == {"actual", "predicted"}
    (tmp_path / "s.txt").write_text("The film is superb .\n\n")
    p = elmo("predict", "--model", str(tmp_path / "cls"), str(tmp_path / "s.txt"), cwd=tmp_path)
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert recs[0]["label"] in ("positive", "negative", "neutral")
    assert abs(sum(recs[0]["probabilities"].values()) - 1) < 1e-4
    assert recs[1]["label"] is None and recs[1]["probabilities"] == {}


def test_cli_bad_labelled_data_is_one_line_error(trained, vectors, tmp_path):  # noqa: F811
    ok_train = str(SAMPLES / "ner" / "train.conll")
    cases = {
        "cols.conll": ("EU B-ORG\nrejects O O\n", r"cols\.conll:2: expected 2 columns"),
        "unseen.conll": ("Acme B-COMPANY\n", r"unseen\.conll:1: label 'B-COMPANY' does not occur"),
        "badtag.conll": ("Acme X-ORG\n", r"badtag\.conll:1: malformed tag"),
        "onecol.conll": ("Acme\n", r"onecol\.conll:1: expected a token and a label column"),
    }
    for name, (text, pattern) in cases.items():
        (tmp_path / name).write_text(text)
        p = elmo(
            "finetune",
            "--task",
            "ner",
            "--train",
            ok_train,
            "--dev",
            str(tmp_path / name),
            "--word2vec",
            str(vectors),
            "--out",
            str(tmp_path / "x"),
            "-q",
            cwd=tmp_path,
        )
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        import re

        assert re.search(pattern, p.stderr), p.stderr
    # invalid I- after O: repaired and counted by default, an error with invalid_tags=error
    (tmp_path / "rep.conll").write_text("said O\nSydney I-LOC\n")
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        ok_train,
        "--dev",
        str(tmp_path / "rep.conll"),
        "--epochs",
        "1",
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "x"),
        "--metrics",
        str(tmp_path / "r.json"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 0 and json.loads((tmp_path / "r.json").read_text())["data"]["repaired_tags"] == 1
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        ok_train,
        "--dev",
        str(tmp_path / "rep.conll"),
        "--set",
        "data.invalid_tags=error",
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "x"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 1 and "rep.conll:2: tag 'I-LOC' does not continue" in p.stderr
    (tmp_path / "t.jsonl").write_text('{"text": "fine", "label": "1"}\n{"label": "0"}\n')
    p = elmo(
        "finetune",
        "--task",
        "classify",
        "--train",
        str(tmp_path / "t.jsonl"),
        "--dev",
        str(tmp_path / "t.jsonl"),
        "--set",
        "data.text_field=text",
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "x"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 1 and "t.jsonl:2: no 'text' field" in p.stderr
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        ok_train,
        "--dev",
        ok_train,
        "--set",
        "head.hidden=zero",
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "x"),
        "-q",
        cwd=tmp_path,
    )
    assert p.returncode == 1 and "hidden" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    p = elmo(
        "finetune",
        "--task",
        "ner",
        "--train",
        ok_train,
        "--dev",
        ok_train,
        "--word2vec",
        str(vectors),
        "--out",
        str(tmp_path / "notes"),
        cwd=tmp_path,
    )  # refused before any training
    assert p.returncode == 1 and "refusing to replace it" in p.stderr and "epoch" not in p.stderr
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    p = elmo("predict", "--model", str(trained / "enc"), ok_train, cwd=tmp_path)
    assert p.returncode == 1 and "not a finetuned task model" in p.stderr


def test_dvc_repro_runs_both_tasks_with_tiny_presets(tmp_path):
    repo = tiny_repo(
        tmp_path,
        pretrain=dict(max_steps=4, eval_every=4, checkpoint_every=4),
        finetune_ner=dict(training=dict(epochs=2), head=dict(hidden=8)),
        finetune_sentiment=dict(training=dict(epochs=2), head=dict(hidden=8)),
    )
    run([str(BIN / "dvc"), "repro"], cwd=repo, check=True)
    ner = json.loads((repo / "metrics" / "finetune_ner.json").read_text())  # the headline numbers
    sent = json.loads((repo / "reports" / "finetune_sentiment.json").read_text())  # every score
    assert ner["epochs_run"] == 2 and "test_f1" in ner and len(sent["test"]["confusion"]) == 3
    assert all(not isinstance(v, (dict, list)) for v in ner.values())  # one level: dvc metrics show reads it
    for picture in ("finetune_ner/curves.png", "finetune_sentiment/curves.png", "finetune_sentiment/confusion.png"):
        assert (repo / "plots" / picture).read_bytes().startswith(b"\x89PNG")
    assert "finetune_sentiment" in (repo / "reports" / "summary.txt").read_text()  # the report stage ran
    assert (repo / "models" / "ner" / "model.safetensors").is_file()
    assert (repo / "plots" / "finetune_sentiment" / "confusion.json").is_file()
    shown = run([str(BIN / "dvc"), "plots", "show", "--json"], cwd=repo, check=True).stdout
    assert "confusion.json" in shown
