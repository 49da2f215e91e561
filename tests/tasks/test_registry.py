"""Every model type on every task it learns, from the registries (a new task or model type is
tested here without a new line): one short finetuning run, save → load → the same predictions."""

import json
import random

import pytest
from test_multilabel import tweet
from test_pairs_and_scores import pair
from test_tagging import conllu_text, sentence

from pipeline.tasks.kinds import TASKS
from pipeline.tasks.models import MODEL_TYPES, load_task_model
from pipeline.train.finetune import finetune

from conftest import REPO
from helpers import finetune_cfg

SAMPLES = REPO / "data" / "samples"
PAIRS = [(t, m) for t, task in TASKS.items() for m, kind in MODEL_TYPES.items() if kind.learns(task)]


def files(task: str, d) -> dict:
    """Small labelled train/dev files of ``task`` in ``d`` and how they are read."""
    rng = random.Random(1)
    if task == "ner":
        return {s: str(SAMPLES / "ner" / f"{s}.conll") for s in ("train", "dev")}
    if task == "classify":
        return {s: str(SAMPLES / "sentiment" / f"{s}.tsv") for s in ("train", "dev")}
    out = {}
    for split, n in (("train", 60), ("dev", 20)):
        if task == "tag":
            (d / f"{split}.conllu").write_text(conllu_text([sentence(rng) for _ in range(n)], split))
            out[split] = str(d / f"{split}.conllu")
        elif task == "multilabel":
            rows = [tweet(rng) for _ in range(n)]
            (d / f"{split}.jsonl").write_text("".join(json.dumps({"text": t, "label": ls}) + "\n" for t, ls in rows))
            out[split] = str(d / f"{split}.jsonl")
        else:  # pair, regress: HF-style JSONL
            rows = [pair(rng) for _ in range(n)]
            key = (lambda lab, score: lab) if task == "pair" else (lambda lab, score: score)
            lines = [json.dumps({"sentence1": a, "sentence2": b, "label": key(lab, sc)}) for a, b, lab, sc in rows]
            (d / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
            out[split] = str(d / f"{split}.jsonl")
    return out | ({"text_field": "text"} if task == "multilabel" else {})


@pytest.mark.parametrize("task, model", PAIRS, ids=[f"{t}-{m}" for t, m in PAIRS])
def test_every_model_type_on_every_task_it_learns(task, model, tmp_path, trained, vectors):
    cfg = finetune_cfg(
        task=task,
        model=model,
        **files(task, tmp_path),
        encoder=str(trained / "enc"),
        word2vec=str(vectors),
        hidden=8,
        epochs=1,
        batch_size=16,
    )
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["model"] == model
    loaded = load_task_model(tmp_path / "m")
    assert type(loaded).__name__ and loaded.cfg.task == task
    dev = TASKS[task].read(loaded.cfg, cfg.data.dev, loaded.tokenize)
    again = loaded.scores(dev)
    assert again[TASKS[task].metric] == pytest.approx(result["dev"][TASKS[task].metric], abs=1e-6)
    card = (tmp_path / "m" / "README.md").read_text()
    assert TASKS[task].title in card and f"task: {task}" in card
