"""Sentence pairs (`--task pair`) and scores (`--task regress`): the two text fields found by the
names people's files use, or set; TF-IDF pair features; the BiLSTM pair model and score head;
`auto`; save → load → predict on pairs; `elmo predict` on tab-separated pairs; one-line errors."""

import json
import random

import pytest

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.tasks.kinds import task_named
from pipeline.tasks.metrics import regression_scores
from pipeline.tasks.models import load_task_model
from pipeline.train.finetune import finetune

from helpers import elmo, finetune_cfg

NOUNS = ["cat", "dog", "man", "woman", "child", "bird", "horse", "car", "river", "house"]
VERBS = ["runs", "sleeps", "jumps", "eats", "sings", "waits"]


def pair(rng: random.Random) -> tuple[str, str, str, float]:
    """(a, b, label, score): the same subject and verb (paraphrase, 5), one shared (2.5), none (0)."""
    n, v = rng.choice(NOUNS), rng.choice(VERBS)
    a = f"The {n} {v} ."
    kind = rng.randrange(3)
    if kind == 0:
        return a, f"A {n} {v} now .", "paraphrase", 5.0
    if kind == 1:
        other = rng.choice([x for x in VERBS if x != v])
        return a, f"A {n} {other} now .", "different", 2.5
    m, w = rng.choice([x for x in NOUNS if x != n]), rng.choice([x for x in VERBS if x != v])
    return a, f"A {m} {w} now .", "different", 0.0


@pytest.fixture
def pairs_dir(tmp_path):
    rng = random.Random(0)
    for split, n in (("train", 200), ("dev", 60), ("test", 60)):
        rows = [pair(rng) for _ in range(n)]
        # as Hugging Face datasets write JSONL: sentence1/sentence2, integer labels
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for a, b, label, _ in rows:
                f.write(json.dumps({"sentence1": a, "sentence2": b, "label": int(label == "paraphrase")}) + "\n")
        # as SICK is distributed: no header, id, two texts, score, label
        (tmp_path / f"{split}.txt").write_text(
            "".join(f"{i}\t{a}\t{b}\t{score}\t{label}\n" for i, (a, b, label, score) in enumerate(rows))
        )
    return tmp_path


def pair_cfg(d, **kw) -> FinetuneConfig:
    base = dict(
        task="pair",
        train=str(d / "train.jsonl"),
        dev=str(d / "dev.jsonl"),
        test=str(d / "test.jsonl"),
        inputs="word2vec",
        hidden=16,
        epochs=8,
        lr=0.01,
    )
    base.update(kw)
    return finetune_cfg(**base)


def sick_cfg(d, **kw) -> FinetuneConfig:
    base = dict(task="regress", format="tsv", text_field=1, text_pair_field=2, label_field=3, inputs="word2vec")
    base.update({s: str(d / f"{s}.txt") for s in ("train", "dev", "test")}, hidden=16, epochs=8, lr=0.01)
    base.update(kw)
    return finetune_cfg(**base)


def test_pairs_are_found_by_their_usual_names(pairs_dir, write):
    data = task_named("pair").read(pair_cfg(pairs_dir), pairs_dir / "dev.jsonl", str.split)
    assert data.pairs and data.sentences[0] == (["The", *data.sentences[0][0][1:]], data.sentences[0][1])
    assert set(data.targets) <= {"0", "1"}
    premise = write("p.tsv", "premise\thypothesis\tlabel\nA man sleeps .\tA person sleeps .\tentailment\n")
    data = task_named("pair").read(pair_cfg(pairs_dir), premise, str.split)
    assert data.sentences == [(["A", "man", "sleeps", "."], ["A", "person", "sleeps", "."])]
    with pytest.raises(PipelineError, match=r"q\.tsv:1: no pair of text fields among a, b, label .*text_pair_field"):
        task_named("pair").read(pair_cfg(pairs_dir), write("q.tsv", "a\tb\tlabel\nx\ty\t1\n"), str.split)
    with pytest.raises(PipelineError, match=r"n\.txt: without a header row, give the second text's column too"):
        cfg = pair_cfg(pairs_dir, format="tsv", text_field=1, label_field=4)
        task_named("pair").read(cfg, write("n.txt", "0\ta\tb\t1\tx\n"), str.split)


def test_regression_scores():
    s = regression_scores([1.0, 2.0, 3.0], [1.0, 2.5, 2.9])
    assert (
        s["pearson"] == pytest.approx(0.948421, abs=1e-6)
        and s["spearman"] == 1.0
        and s["mse"] == pytest.approx((0 + 0.25 + 0.01) / 3, abs=1e-6)
    )
    assert regression_scores([1.0, 2.0], [3.0, 3.0])["pearson"] == 0.0  # a constant prediction


def test_a_score_that_is_not_a_number_names_the_line(pairs_dir, write):
    bad = write("bad.txt", "0\tA cat .\tA dog .\tfour\tx\n")
    with pytest.raises(PipelineError, match=r"bad\.txt:1: the score 'four' is not a number"):
        task_named("regress").read(sick_cfg(pairs_dir), bad, str.split)


def test_tfidf_pair_model_round_trips_and_predicts_pairs(pairs_dir, tmp_path):
    result = finetune(pair_cfg(pairs_dir, model="tfidf"), tmp_path / "m", progress=False)
    assert result["test"]["accuracy"] > 0.9 and "positive_f1" in result["test"] and result["test"]["positive"] == "1"
    model = load_task_model(tmp_path / "m")
    assert model.pairs
    ((label, probs),) = model.predict([("The dog sleeps .", "A dog sleeps now .")])
    assert label == "1" and abs(sum(probs.values()) - 1) < 1e-6
    with pytest.raises(PipelineError, match=r"example 0: a pair model takes \(text, text\) pairs"):
        model.predict(["one text"])


def test_auto_on_pairs_trains_every_candidate(pairs_dir, tmp_path, trained):
    cfg = pair_cfg(pairs_dir, inputs="elmo", encoder=str(trained / "enc"))
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert set(result["candidates"]) == {"tfidf", "linear", "bilstm", "ensemble"}
    bilstm = result["candidates"]["bilstm"]
    assert bilstm["dev"] > 0.6, result["candidates"]  # the pair model learns
    model = load_task_model(tmp_path / "m")
    assert model.predict([("The cat runs .", "A cat runs now .")])[0][0] in ("0", "1")


def test_regress_on_sick_columns_with_the_bilstm_and_clipping(pairs_dir, tmp_path):
    from gensim.models import Word2Vec

    words = [f"The {n} {v} .".split() for n in NOUNS for v in VERBS] + [["A", "now"]]
    Word2Vec(words, vector_size=8, min_count=1, workers=1, seed=0).wv.save_word2vec_format(str(tmp_path / "v.txt"))
    cfg = sick_cfg(pairs_dir, model="bilstm", word2vec=str(tmp_path / "v.txt"), clip=True, lr=0.01)
    result = finetune(cfg, tmp_path / "m", progress=False)
    assert result["test"]["pearson"] > 0.5, result["test"]
    model = load_task_model(tmp_path / "m")
    scores = model.predict([("The cat runs .", "A cat runs now ."), ("The cat runs .", "A bird sings now .")])
    assert all(0.0 <= s <= 5.0 for s in scores) and scores[0] > scores[1]
    result = finetune(sick_cfg(pairs_dir, model="tfidf"), tmp_path / "t", progress=False)
    assert result["test"]["pearson"] > 0.8 and set(result["test"]) == {"pearson", "spearman", "mse"}


def test_cli_pair_predict_reads_tab_separated_pairs(pairs_dir):
    p = elmo(
        "finetune",
        "--task",
        "pair",
        "--model",
        "tfidf",
        "--train",
        "train.jsonl",
        "--dev",
        "dev.jsonl",
        "--out",
        "m",
        cwd=pairs_dir,
    )
    assert p.returncode == 0, p.stderr
    (pairs_dir / "in.tsv").write_text("The dog sleeps .\tA dog sleeps now .\nno tab here\n")
    p = elmo("predict", "in.tsv", "--model", "m", cwd=pairs_dir)
    assert p.returncode == 1 and "in.tsv:2: a pair model reads two texts per line separated by a tab" in p.stderr
    (pairs_dir / "in.tsv").write_text("The dog sleeps .\tA dog sleeps now .\n")
    p = elmo("predict", "in.tsv", "--model", "m", cwd=pairs_dir)
    record = json.loads(p.stdout)
    assert record["tokens_pair"] == ["A", "dog", "sleeps", "now", "."] and record["label"] == "1"
    assert "hold a tab" not in p.stderr
    p = elmo("evaluate", "test.jsonl", "--model", "m", cwd=pairs_dir)
    assert p.returncode == 0 and "F1 of '1'" in p.stdout, p.stderr
    (pairs_dir / "one.tsv").write_text("sentence\tlabel\nThe dog sleeps .\t1\n")
    p = elmo("evaluate", "one.tsv", "--model", "m", cwd=pairs_dir)
    assert p.returncode == 1 and "one.tsv:1: no pair of text fields among sentence, label" in p.stderr


def test_scores_read_as_classes_get_a_warning(pairs_dir):
    p = elmo(
        "finetune", "--model", "tfidf", "--train", "train.txt", "--dev", "dev.txt", "--format", "tsv",
        "--set", "data.text_field=1", "--set", "data.text_pair_field=2", "--set", "data.label_field=3",
        "--out", "m", cwd=pairs_dir,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "task: classify" in p.stderr and "labels are numbers with decimals" in p.stderr
    assert "--task regress" in p.stderr
