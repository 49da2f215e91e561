"""Early stopping cannot stop a model at chance level: patience counts once dev beats the trivial
score (always the most frequent label; F1 0 for NER) or after ``min_epochs``."""

import random

from pipeline.tasks.examples import TaskData
from pipeline.tasks.kinds import task_named
from pipeline.train.finetune import BestSoFar, finetune

from helpers import finetune_cfg


class Net:  # what BestSoFar.update needs of a model: its weights
    def state_dict(self):
        return {}


def test_trivial_score_is_the_majority_share():
    dev = TaskData("d", [["a"]] * 5, ["pos", "neg", "pos", "pos", "neg"], [1] * 5)
    assert task_named("classify").trivial_score(dev) == 0.6
    assert task_named("ner").trivial_score(dev) == 0.0


def test_patience_waits_for_a_score_above_chance():
    best = BestSoFar(trivial=0.6, min_epochs=10)
    assert best.update(0.55, {}, 1, Net())
    for epoch in range(2, 8):  # stuck at or below chance: not counted
        best.update(0.5, {}, epoch, Net())
    assert best.bad_epochs == 0
    assert best.update(0.7, {}, 8, Net())
    best.update(0.65, {}, 9, Net())
    assert best.bad_epochs == 1  # above chance now: counted


def test_patience_counts_after_min_epochs_even_at_chance():
    best = BestSoFar(trivial=0.6, min_epochs=3)
    best.update(0.5, {}, 1, Net())
    best.update(0.5, {}, 2, Net())
    assert best.bad_epochs == 0
    best.update(0.5, {}, 3, Net())
    assert best.bad_epochs == 0
    best.update(0.5, {}, 4, Net())  # past min_epochs: counted
    assert best.bad_epochs == 1


def test_a_run_that_never_beats_chance_says_so(tmp_path, vectors):
    rng = random.Random(0)
    words = "good bad film plot actor scene music story".split()
    rows = ["sentence\tlabel"] + [f"{' '.join(rng.choices(words, k=5))}\t{rng.choice('ab')}" for _ in range(60)]
    (tmp_path / "t.tsv").write_text("\n".join(rows) + "\n")
    dev = ["sentence\tlabel"] + [f"{' '.join(rng.choices(words, k=5))}\ta" for _ in range(20)]
    (tmp_path / "d.tsv").write_text("\n".join(dev) + "\n")  # all one label: chance is 1.0, unbeatable
    said = []
    cfg = finetune_cfg(
        task="classify",
        model="bilstm",
        train=str(tmp_path / "t.tsv"),
        dev=str(tmp_path / "d.tsv"),
        inputs="word2vec",
        word2vec=str(vectors),
        epochs=4,
        patience=1,
        min_epochs=2,
    )
    result = finetune(cfg, tmp_path / "m", progress=False, log=said.append)
    assert result["epochs_run"] == 3  # min_epochs 2, then one epoch of patience
    assert any("never beat always predicting the most frequent label (1.0000)" in m for m in said)


def test_a_failed_run_leaves_the_previous_model_as_it_was(tmp_path, vectors):
    from pathlib import Path

    import pytest

    from pipeline.errors import PipelineError

    samples = Path(__file__).resolve().parents[2] / "data" / "samples" / "sentiment"
    files = {k: str(samples / f"{k}.tsv") for k in ("train", "dev")}
    finetune(finetune_cfg(task="classify", model="tfidf", **files), tmp_path / "m", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    cfg = finetune_cfg(
        task="classify",
        model="bilstm",
        inputs="word2vec",
        word2vec=str(vectors),
        lr=1e30,
        grad_clip=None,
        epochs=3,
        **files,
    )
    with pytest.raises(PipelineError, match=r"loss is .* is left as it was"):
        finetune(cfg, tmp_path / "m", progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()} == before
