"""0 or more labels per text (`--task multilabel`): one 0/1 column per label (SemEval-2018 E-c's
layout), a delimited label field or a JSON list; thresholds picked on dev; TF-IDF one-vs-rest and
the BiLSTM; Jaccard accuracy, micro- and macro-F1; save → load → predict; the CLI."""

import json
import random

import numpy as np
import pytest

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.tasks.kinds import task_named
from pipeline.tasks.metrics import multilabel_scores, tune_thresholds
from pipeline.tasks.models import load_task_model
from pipeline.train.finetune import finetune

from helpers import elmo, finetune_cfg

CUES = {"joy": ["happy", "glad"], "anger": ["furious", "mad"], "fear": ["scared", "afraid"]}
FILLER = ["today", "again", "at", "work", "the", "news", "about", "it", "so", "really"]


def tweet(rng: random.Random) -> tuple[str, list[str]]:
    labels = sorted(x for x in CUES if rng.random() < 0.35)
    words = [rng.choice(FILLER) for _ in range(4)] + [rng.choice(CUES[x]) for x in labels]
    rng.shuffle(words)
    return " ".join(words), labels


@pytest.fixture
def emotions(tmp_path):
    rng = random.Random(0)
    names = list(CUES)
    for split, n in (("train", 240), ("dev", 80), ("test", 80)):
        rows = [tweet(rng) for _ in range(n)]
        lines = ["ID\tTweet\t" + "\t".join(names)]
        lines += [f"{split}-{i}\t{t}\t" + "\t".join(str(int(x in ls)) for x in names) for i, (t, ls) in enumerate(rows)]
        (tmp_path / f"{split}.txt").write_text("\r\n".join(lines) + "\r\n")  # CRLF, as distributed
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for t, ls in rows:
                f.write(json.dumps({"text": t, "labels": ls}) + "\n")
    return tmp_path


def ml_cfg(d, **kw) -> FinetuneConfig:
    base = dict(task="multilabel", format="tsv", text_field="Tweet", inputs="word2vec", hidden=16, epochs=10)
    base.update({s: str(d / f"{s}.txt") for s in ("train", "dev", "test")}, lr=0.01)
    base.update(kw)
    return finetune_cfg(**base)


def test_label_columns_lists_and_delimited_fields(emotions, write):
    data = task_named("multilabel").read(ml_cfg(emotions), emotions / "dev.txt", str.split)
    assert data.label_names == ["joy", "anger", "fear"]  # ID is not a 0/1 column
    assert all(t == sorted(t) and set(t) <= set(CUES) for t in data.targets)
    js = task_named("multilabel").read(
        ml_cfg(emotions, text_field="text", label_field="labels", format=None), emotions / "dev.jsonl", str.split
    )
    assert js.targets == data.targets
    delimited = write("d.tsv", "sentence\tlabel\nso happy and mad\tjoy, anger\nnothing here\t\n")
    d = task_named("multilabel").read(ml_cfg(emotions, text_field="sentence", format=None), delimited, str.split)
    assert d.targets == [["anger", "joy"], []]
    with pytest.raises(PipelineError, match=r"x\.tsv:1: no 'label' field and no 0/1 label columns"):
        task_named("multilabel").read(
            ml_cfg(emotions, text_field="sentence", format=None), write("x.tsv", "sentence\tid\na b\tq7\n"), str.split
        )


def test_scores_and_thresholds():
    s = multilabel_scores([["a"], ["a", "b"], []], [["a"], ["a"], []], ["a", "b"])
    assert s["jaccard"] == pytest.approx((1 + 0.5 + 1) / 3) and s["per_label"]["b"]["support"] == 1
    assert s["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    probs = np.array([[0.9, 0.3], [0.8, 0.35], [0.1, 0.1]])
    t = tune_thresholds(probs, [["a"], ["a", "b"], []], ["a", "b"])
    assert 0.3 < t[1] <= 0.35  # b on for the second example only


def test_tfidf_one_vs_rest_round_trips(emotions, tmp_path):
    result = finetune(ml_cfg(emotions, model="tfidf"), tmp_path / "m", progress=False)
    assert result["test"]["jaccard"] > 0.8 and set(result["test"]) >= {"micro_f1", "macro_f1", "per_label"}
    model = load_task_model(tmp_path / "m")
    labels, probs = model.predict(["so happy today but scared"])[0]
    assert labels == ["fear", "joy"] and set(probs) == set(CUES)


def test_auto_trains_the_bilstm_beside_tfidf(emotions, tmp_path, vectors):
    cfg = ml_cfg(emotions, word2vec=str(vectors), auto_budget=None)  # seconds of TF-IDF would leave it no time
    result = finetune(cfg, tmp_path / "m", tmp_path / "pl", progress=False)
    assert set(result["candidates"]) == {"tfidf", "bilstm"}  # no encoder: no linear; no ensemble of label sets
    assert result["candidates"]["bilstm"]["dev"] > 0.35, result["candidates"]  # no labels: 0.27
    model = load_task_model(tmp_path / "m")
    assert isinstance(model.predict(["glad glad glad"])[0][0], list)


def test_cli_predict_and_evaluate(emotions):
    p = elmo(
        "finetune", "--task", "multilabel", "--model", "tfidf", "--train", "train.jsonl", "--dev", "dev.jsonl",
        "--set", "data.text_field=text", "--set", "data.label_field=labels", "--out", "m", cwd=emotions,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (emotions / "in.txt").write_text("furious at the news\n")
    p = elmo("predict", "in.txt", "--model", "m", cwd=emotions)
    assert json.loads(p.stdout)["labels"] == ["anger"]
    p = elmo("evaluate", "test.jsonl", "--model", "m", cwd=emotions)
    assert p.returncode == 0 and "Jaccard accuracy" in p.stdout, p.stderr
