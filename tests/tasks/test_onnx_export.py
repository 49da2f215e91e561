"""`elmo export --format onnx MODEL_DIR OUT` of a task model: the whole BiLSTM model (inputs, biLM,
mixes, head) as one graph for every task shape and input variant, checked against PyTorch (outputs
and predictions) before it is written; the export runs in ONNX Runtime through load_task_model,
`elmo predict`/`evaluate` and `elmo serve`; int8's dev score is measured and a drop past the bound
refused, the earlier export kept. Models are trained for one epoch on small made-up or shipped data."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.tasks.models import load_task_model
from pipeline.tasks.onnx import OnnxTaskModel
from pipeline.train.finetune import finetune

from helpers import REPO, cli, finetune_cfg

pytest.importorskip("onnxruntime")
SAMPLES = REPO / "data" / "samples"
NOUNS = ["cat", "dog", "man", "woman", "child", "bird", "horse", "car"]
VERBS = ["runs", "sleeps", "jumps", "eats", "sings", "waits"]


def made_up(d: Path) -> None:
    """Pairs with a label and a score, texts with 0-2 labels, and sentences tagged by their shape."""
    rng = random.Random(0)
    for split, n in (("train", 80), ("dev", 30)):
        with open(d / f"pairs-{split}.jsonl", "w") as f:
            for _ in range(n):
                noun, verb = rng.choice(NOUNS), rng.choice(VERBS)
                same = rng.random() < 0.5
                other = verb if same else rng.choice([v for v in VERBS if v != verb])
                row = {"sentence1": f"The {noun} {verb} .", "sentence2": f"A {noun} {other} now",
                       "label": int(same), "score": 5.0 if same else rng.choice([0.0, 2.5])}  # fmt: skip
                f.write(json.dumps(row) + "\n")
        with open(d / f"labels-{split}.jsonl", "w") as f:
            for _ in range(n):
                labels = sorted(x for x in ("joy", "fear") if rng.random() < 0.4)
                words = [rng.choice(NOUNS) for _ in range(3)] + [{"joy": "glad", "fear": "afraid"}[x] for x in labels]
                f.write(json.dumps({"text": " ".join(words), "labels": labels}) + "\n")
        with open(d / f"tags-{split}.conll", "w") as f:
            for _ in range(n):
                words = [rng.choice(NOUNS + VERBS + ["Paris", "42", ","]) for _ in range(rng.randint(1, 7))]
                tags = ["NUM" if w.isdigit() else "P" if w == "," else "NAME" if w.istitle() else "W" for w in words]
                f.write("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n")


# task, its files, settings beyond one epoch of a small BiLSTM on word vectors, chars and ELMo
CASES = {
    "classify": ("classify", (SAMPLES / "sentiment", "train.tsv", "dev.tsv"), {"pooling": "max"}),
    "ner": ("ner", (SAMPLES / "ner", "train.conll", "dev.conll"), {"elmo_output": True, "layer_norm": True}),
    "tag": ("tag", (None, "tags-train.conll", "tags-dev.conll"), {"word_vectors": "lookup"}),
    "pair": ("pair", (None, "pairs-train.jsonl", "pairs-dev.jsonl"), {"pooling": "attention", "char_encoder": "none"}),
    "regress": (
        "regress",
        (None, "pairs-train.jsonl", "pairs-dev.jsonl"),
        {"inputs.use": "elmo", "clip": True, "label_field": "score"},
    ),  # fmt: skip
    "multilabel": (
        "multilabel",
        (None, "labels-train.jsonl", "labels-dev.jsonl"),
        {"finetune_encoder": True, "text_field": "text", "label_field": "labels"},
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx-tasks")
    made_up(d)
    return d


def trained_model(name: str, data_dir: Path, trained, vectors, out: Path) -> Path:
    task, (where, train, dev), extra = CASES[name]
    where = where or data_dir
    cfg = finetune_cfg(task=task, model="bilstm", train=str(where / train), dev=str(where / dev), test=None,
                       encoder=str(trained / "enc"), word2vec=str(vectors), hidden=8, epochs=1, batch_size=16,
                       **extra)  # fmt: skip
    finetune(cfg, out, progress=False, log=lambda m: None)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_every_task_shape_exports_with_parity_and_runs_in_onnx_runtime(name, data_dir, trained, vectors, tmp_path):
    from pipeline.tasks.export_onnx import export_task_onnx

    model_dir = trained_model(name, data_dir, trained, vectors, tmp_path / "model")
    said: list[str] = []
    report = export_task_onnx(model_dir, tmp_path / "onnx", log=said.append)
    assert report["max_abs_diff"] <= 1e-4 and report["agreement"] in (1.0, None), report
    assert "dev" in report and report["dev"]["onnx_fp32"] == pytest.approx(report["dev"]["pytorch"], abs=1e-4)
    assert json.loads((tmp_path / "onnx" / "onnx.json").read_text()) == report
    assert "## ONNX" in (tmp_path / "onnx" / "README.md").read_text() and any("parity" in s for s in said)

    torch_model, onnx_model = load_task_model(model_dir), load_task_model(tmp_path / "onnx")
    assert isinstance(onnx_model, OnnxTaskModel)
    assert not isinstance(load_task_model(tmp_path / "onnx", "torch"), OnnxTaskModel)
    texts = (
        [("The cat runs .", "A cat runs now"), ("A dog", ""), ("Zürich unheard-of", "words here , 42")]
        if torch_model.pairs
        else ["The cat runs in Paris .", "", "Zürich unheard-of words , 42 !", "a " * 40]
    )
    a, b = torch_model.predict(texts), onnx_model.predict(texts)
    assert len(a) == len(b) == len(texts)
    for p, q in zip(a, b):
        if torch_model.task.target in ("label", "labels"):
            assert p[0] == q[0] and all(abs(p[1][k] - q[1][k]) < 1e-4 for k in p[1])
        elif torch_model.task.target == "score":
            assert (p is None and q is None) or abs(p - q) < 1e-4
        else:
            assert p == q


def test_cli_export_predict_evaluate_serve_and_int8_refusal(trained, vectors, data_dir, tmp_path):
    from helpers import ServeProcess

    model_dir = trained_model("ner", data_dir, trained, vectors, tmp_path / "ner")
    dev = SAMPLES / "ner" / "dev.conll"
    p = cli("export", model_dir, "ner-onnx", "--format", "onnx", "--int8", "--int8-max-drop", "1", cwd=tmp_path)
    assert p.returncode == 0 and "model.onnx (int8" in p.stdout, p.stderr
    report = json.loads((tmp_path / "ner-onnx" / "onnx.json").read_text())
    assert report["int8"] and {"pytorch", "onnx_fp32", "onnx_int8"} <= set(report["dev"])
    assert "onnx_int8" in report["seconds"] and report["int8_agreement"] > 0.5
    assert f"dev f1: pytorch {report['dev']['pytorch']:.4f}" in (tmp_path / "ner-onnx" / "README.md").read_text()

    (tmp_path / "in.txt").write_text("George Bush went to Paris .\n\nEU rejects German call\n")
    outs = []
    for m in (model_dir, tmp_path / "ner-onnx"):
        p = cli("predict", "--model", m, "in.txt", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        outs.append([json.loads(line) for line in p.stdout.splitlines()])
    assert [r["tokens"] for r in outs[0]] == [r["tokens"] for r in outs[1]] and len(outs[1]) == 3
    p = cli("evaluate", "--model", "ner-onnx", dev, cwd=tmp_path)
    assert p.returncode == 0 and "entity precision" in p.stdout, p.stderr

    # int8 past the bound (a gain of a whole point is asked for): refused, the earlier export kept
    before = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "ner-onnx").iterdir()}
    p = cli("export", model_dir, "ner-onnx", "--format", "onnx", "--int8", "--int8-max-drop", "-1", "--dev", dev,
            cwd=tmp_path)  # fmt: skip
    assert p.returncode == 1 and "more than --int8-max-drop -1: not written" in p.stderr and "Traceback" not in p.stderr
    assert {f.name: f.stat().st_mtime_ns for f in (tmp_path / "ner-onnx").iterdir()} == before

    server = ServeProcess(tmp_path / "ner-onnx", cwd=tmp_path)
    try:
        status, answer = server.request("POST", "/predict", {"texts": ["George Bush went to Paris ."]})
        assert status == 200 and answer["predictions"][0]["tokens"][0] == "George", answer
        status, meta = server.request("GET", "/metadata")
        assert status == 200 and meta["models"][0]["runtime"] == "onnxruntime", meta
    finally:
        server.stop()


def test_what_cannot_be_exported_says_so_in_one_line(trained, vectors, data_dir, tmp_path):
    cfg = finetune_cfg(task="classify", model="tfidf", train=str(SAMPLES / "sentiment" / "train.tsv"),
                       dev=str(SAMPLES / "sentiment" / "dev.tsv"), test=None)  # fmt: skip
    finetune(cfg, tmp_path / "tfidf", progress=False, log=lambda m: None)
    p = cli("export", "tfidf", "out", "--format", "onnx", cwd=tmp_path)
    assert p.returncode == 1 and "a tfidf model has no ONNX export" in p.stderr and len(p.stderr.splitlines()) == 1
    model_dir = trained_model("classify", data_dir, trained, vectors, tmp_path / "clf")
    p = cli("export", "clf", "clf", "--format", "onnx", cwd=tmp_path)
    assert p.returncode == 1 and "refusing to write OUT_DIR there" in p.stderr
    p = cli("export", "clf", "q", "--format", "onnx", "--int8", "--dev", "missing.tsv", cwd=tmp_path)
    assert p.returncode == 1 and "missing.tsv" in p.stderr and not (tmp_path / "q").exists()
    (model_dir / "config.json").write_text(
        (model_dir / "config.json").read_text().replace(str(SAMPLES / "sentiment" / "dev.tsv"), "gone.tsv")
    )
    with pytest.raises(PipelineError, match="--int8 measures the dev score's change: give a labelled dev file"):
        from pipeline.tasks.export_onnx import export_task_onnx

        export_task_onnx(model_dir, tmp_path / "q", int8=True, log=lambda m: None)
    report = export_task_onnx(model_dir, tmp_path / "q", log=lambda m: None)  # parity on built-in sentences
    assert report["checked_on"].endswith("check sentences") and report["agreement"] == 1.0 and "dev" not in report
    assert np.isfinite(report["max_abs_diff"])
