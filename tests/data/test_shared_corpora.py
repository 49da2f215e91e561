"""Slow: the named presets prepare the real corpora in ../shared/data (counts from their READMEs)."""

import pytest

from pipeline.config import load_params
from pipeline.data.prepare import prepare_corpus
from pipeline.data.prepared import PreparedData

from conftest import REPO, shared

pytestmark = pytest.mark.slow


def _prepare(tmp_path, preset):
    # presets name ../shared/data relative to the repository root
    (tmp_path / "params.yaml").write_text(f"presets: [{preset}]\n")
    params = load_params(tmp_path / "params.yaml")
    import os

    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        return prepare_corpus(params.prepare, tmp_path / "out", progress=False)
    finally:
        os.chdir(cwd)


def test_ptb_preset(tmp_path):
    shared("ptb", "ptb.train.txt")
    stats = _prepare(tmp_path, "ptb")
    # README: 929,589 / 73,760 / 82,430 tokens including one <eos> per sentence; vocab 10,000
    assert stats["train_tokens"] + stats["train_sentences"] == 929_589
    assert stats["valid_tokens"] + stats["valid_sentences"] == 73_760
    assert stats["test_tokens"] + stats["test_sentences"] == 82_430
    assert stats["vocab_size"] == 9_999 + 4  # PTB's 10k words counting <eos>, which we replace by </S>
    assert stats["valid_oov_rate"] == 0.0
    data = PreparedData(tmp_path / "out")
    assert data.text_file("train").read_text().split("\n", 1)[0].startswith("aer banknote berlitz")


def test_wikitext2_preset(tmp_path):
    shared("wikitext-2", "wiki.train.tokens")
    stats = _prepare(tmp_path, "wikitext2")
    # README: 2,088,628 train tokens incl. one <eos> per line (36,718 lines); tokens are kept intact
    assert stats["train_tokens"] == 2_088_628 - 36_718
    assert stats["sentence_length"]["max"] <= 100
    assert stats["blank_lines"] > 0 and stats["train_sentences"] > 80_000


def test_conll2003_reads_with_the_readme_counts():
    from pipeline.data.tags import read_conll

    counts = {}
    for split, n in (("train", 14_041), ("valid", 3_250), ("test", 3_453)):
        d = read_conll(shared("conll2003", f"{split}.txt"), scheme="iob2", target="bioes")
        counts[split] = len(d.sentences)
        assert counts[split] == n and d.repaired == 0
