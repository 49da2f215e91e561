"""Any per-token tags (`--task tag`): CoNLL-U and CoNLL column files, the most-frequent-tag
model, the BiLSTM-CRF tagger, `auto` over both, token accuracy and span scores, the CLI."""

import json
import random

import pytest

from pipeline.config import FinetuneConfig
from pipeline.data.conllu import read_conllu
from pipeline.errors import PipelineError
from pipeline.tasks.metrics import tag_scores
from pipeline.tasks.models import check_model, load_task_model
from pipeline.train.finetune import finetune

from helpers import elmo, finetune_cfg

NOUNS = ["cat", "dog", "fire", "house", "river", "city", "man", "storm"]
VERBS = ["saw", "left", "burned", "crossed", "found", "hit"]
ADJS = ["big", "old", "red", "quiet", "burning"]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """A tagged sentence of a small grammar; "burning" is ADJ or VERB by its context."""
    words = [("The", "DET")] + ([(rng.choice(ADJS), "ADJ")] if rng.random() < 0.5 else [])
    words += [(rng.choice(NOUNS), "NOUN")]
    if rng.random() < 0.3:
        words += [("was", "AUX"), ("burning", "VERB")]
    else:
        words += [(rng.choice(VERBS), "VERB"), ("the", "DET"), (rng.choice(NOUNS), "NOUN")]
    return words + [(".", "PUNCT")]


def conllu_text(sentences, prefix: str) -> str:
    """CoNLL-U as distributed: comments, a multiword token and an empty node in the first sentence."""
    out = []
    for i, sent in enumerate(sentences):
        out += [f"# sent_id = {prefix}-{i}", "# text = " + " ".join(w for w, _ in sent)]
        for j, (w, t) in enumerate(sent, 1):
            if i == 0 and j == 2:
                out.append(f"{j}-{j + 1}\t{w}{sent[j][0]}\t_\t_\t_\t_\t_\t_\t_\t_")
            out.append(f"{j}\t{w}\t{w.lower()}\t{t}\t{t}-X\t_\t{max(j - 1, 0)}\tdep\t_\t_")
            if i == 0 and j == 1:
                out.append("1.1\tghost\t_\tNOUN\t_\t_\t_\t_\t0:root\t_")
        out.append("")
    return "\n".join(out) + "\n"


@pytest.fixture
def treebank(tmp_path):
    rng = random.Random(0)
    for split, n in (("train", 120), ("dev", 30), ("test", 30)):
        (tmp_path / f"{split}.conllu").write_text(conllu_text([sentence(rng) for _ in range(n)], split))
    return tmp_path


def test_conllu_keeps_syntactic_words_tags_and_ids(treebank):
    d = read_conllu(treebank / "train.conllu")
    assert len(d.sentences) == 120 and d.ids[:2] == ["train-0", "train-1"]
    assert "ghost" not in d.sentences[0]  # the empty node is skipped
    assert d.sentences[0][0] == "The" and d.tags[0][0] == "DET" and len(d.sentences[0]) == len(d.tags[0])
    assert not any("-" in w and w.count("-") == 0 for w in d.sentences[0])
    assert read_conllu(treebank / "train.conllu", "xpos").tags[0][0] == "DET-X"
    assert d.lines[0] == 3  # the first token line, after the comments


def test_conllu_errors_name_the_line(write):
    with pytest.raises(
        PipelineError, match=r"bad\.conllu:2: expected 10 tab-separated CoNLL-U columns, got 1 \(a CoNLL column file"
    ):
        read_conllu(write("bad.conllu", "# c\nThe DET\n"))
    with pytest.raises(PipelineError, match=r"x\.conllu:1: no XPOS tag .*--set data.conllu_tags=upos"):
        read_conllu(write("x.conllu", "1\tThe\tthe\tDET\t_\t_\t0\troot\t_\t_\n"), "xpos")


def test_tag_scores_accuracy_and_spans_for_chunk_tags():
    s = tag_scores([["DET", "NOUN"], ["VERB"]], [["DET", "VERB"], ["VERB"]], ["DET", "NOUN", "VERB"])
    assert s["accuracy"] == pytest.approx(2 / 3) and s["tokens"] == 3 and "span_f1" not in s
    assert s["per_tag"]["VERB"]["precision"] == 0.5 and s["per_tag"]["NOUN"]["support"] == 1
    chunks = tag_scores([["B-NP", "I-NP", "O"]], [["B-NP", "B-NP", "O"]], ["B-NP", "I-NP", "O"])
    assert chunks["accuracy"] == pytest.approx(2 / 3) and chunks["span_f1"] == 0.0


def tag_cfg(treebank, **kw) -> FinetuneConfig:
    base = dict(
        task="tag",
        train=str(treebank / "train.conllu"),
        dev=str(treebank / "dev.conllu"),
        test=str(treebank / "test.conllu"),
        inputs="word2vec",
        word2vec=None,
        hidden=16,
        epochs=3,
        lr=0.01,
    )
    base.update(kw)
    return finetune_cfg(**base)


def test_majority_tagger_round_trips(treebank, tmp_path):
    result = finetune(tag_cfg(treebank, model="majority"), tmp_path / "m", progress=False)
    assert result["model"] == "majority" and result["test"]["accuracy"] > 0.9  # "burning" is ambiguous
    model = load_task_model(tmp_path / "m")
    pred = model.predict([["The", "zebra", "saw", "the", "CAT", "."]])[0]
    train = read_conllu(treebank / "train.conllu")
    counts = {t: sum(tags.count(t) for tags in train.tags) for t in result["labels"]}
    assert pred[1] == max(counts, key=counts.get)  # an unseen word: the most frequent tag
    assert pred[2:] == ["VERB", "DET", "NOUN", "PUNCT"]  # "CAT" by its lowercase form
    assert "most frequent training tag" in (tmp_path / "m" / "README.md").read_text()


def test_auto_tags_with_the_bilstm_and_the_majority_baseline(treebank, tmp_path, trained):
    cfg = tag_cfg(treebank, inputs="elmo", encoder=str(trained / "enc"))
    result = finetune(cfg, tmp_path / "m", tmp_path / "plots", progress=False)
    assert set(result["candidates"]) == {"majority", "bilstm"}
    kept = result["model"]
    assert result["candidates"][kept]["dev"] == max(c["dev"] for c in result["candidates"].values())
    model = load_task_model(tmp_path / "m")
    pred = model.predict(["The cat was burning ."])[0]
    assert len(pred) == 5 and set(pred) <= set(result["labels"])
    assert (tmp_path / "plots" / "dev.tsv").read_text().startswith("epoch\tstep\taccuracy")


def test_the_tag_task_is_the_only_one_for_majority(treebank):
    with pytest.raises(PipelineError, match=r"model: majority does not learn task classify .* majority learns tag"):
        check_model(finetune_cfg(task="classify", model="majority"))
    with pytest.raises(
        PipelineError, match=r"model: tfidf does not learn task tag \(models for tag: auto, majority, bil"
    ):
        check_model(tag_cfg(treebank, model="tfidf"))


def test_cli_infers_tag_from_conllu_and_from_non_entity_columns(treebank, tmp_path):
    p = elmo(
        "finetune", "--train", "train.conllu", "--dev", "dev.conllu", "--model", "majority", "--out", "m", cwd=treebank
    )
    assert p.returncode == 0, p.stderr
    assert "task: tag (train.conllu is CoNLL-U" in p.stderr and "dev accuracy" in p.stdout
    p = elmo("evaluate", "test.conllu", "--model", "m", "--metrics", "e.json", cwd=treebank)
    assert p.returncode == 0 and "token accuracy" in p.stdout, p.stderr
    assert json.loads((treebank / "e.json").read_text())["per_tag"]["DET"]["support"] > 0
    (treebank / "in.txt").write_text("The old dog left .\n")
    p = elmo("predict", "in.txt", "--model", "m", cwd=treebank)
    assert p.returncode == 0 and json.loads(p.stdout)["tags"] == ["DET", "ADJ", "NOUN", "VERB", "PUNCT"]
    # CoNLL columns whose tags are not entity tags (POS in column 1) mean tag, said in one line
    rows = read_conllu(treebank / "train.conllu")
    text = "\n\n".join("\n".join(f"{w} {t} O" for w, t in zip(s, g)) for s, g in zip(rows.sentences, rows.tags))
    (treebank / "pos.txt").write_text(text + "\n")
    p = elmo(
        "finetune",
        "--train",
        "pos.txt",
        "--dev",
        "pos.txt",
        "--set",
        "data.label_column=1",
        "--model",
        "majority",
        "--out",
        "m2",
        cwd=treebank,
    )
    assert p.returncode == 0 and "task: tag (pos.txt's tags are not entity tags" in p.stderr, p.stderr


def test_a_dev_tag_missing_from_train_is_counted_not_refused(treebank, tmp_path):
    dev = treebank / "dev.conllu"
    dev.write_text(dev.read_text().replace("\tPUNCT\t", "\tSYM\t", 1))
    notes = []
    result = finetune(tag_cfg(treebank, model="majority"), tmp_path / "m", progress=False, log=notes.append)
    assert any("dev.conllu: 1 tokens have tags that never occur in the training data" in n for n in notes)
    assert result["dev"]["accuracy"] < 1.0 and "SYM" not in result["labels"]
