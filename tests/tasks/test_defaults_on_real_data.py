"""The CLI defaults on real labelled data nobody tuned them on (slow: reads ../shared/data).

A new NER task: the first 1,000 sentences of CoNLL-2003 train, word vectors trained by gensim
on those sentences only, no biLM; `elmo finetune` with its defaults must learn a real tagger
(a feature CRF gets test F1 0.66 on the same files; before the word table and char CNN our
defaults reached 0.36)."""

import json
import subprocess
import sys

import pytest

from conftest import shared


@pytest.mark.slow
def test_ner_defaults_learn_on_a_new_data_set(tmp_path):
    from gensim.models import Word2Vec

    conll = shared("conll2003")
    blocks = [b for b in conll.joinpath("train.txt").read_text().split("\n\n") if b.strip() and "-DOCSTART-" not in b]
    (tmp_path / "train.txt").write_text("\n\n".join(blocks[:1000]) + "\n")
    sents = [[line.split()[0] for line in b.splitlines()] for b in blocks[:1000]]
    Word2Vec(sents, vector_size=50, min_count=1, epochs=10, workers=1, seed=0).wv.save_word2vec_format(
        str(tmp_path / "v.txt")
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "-q",
            "finetune",
            "--task",
            "ner",
            "--train",
            "train.txt",
            "--dev",
            str(conll / "valid.txt"),
            "--test",
            str(conll / "test.txt"),
            "--word2vec",
            "v.txt",
            "--inputs",
            "word2vec",
            "--out",
            "m",
            "--metrics",
            "m.json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["test"]["f1"] > 0.55, scores["test"]
