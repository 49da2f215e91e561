from collections import Counter

import pytest

from pipeline.data.vocab import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocab
from pipeline.errors import PipelineError


def test_counts_and_order():
    counts = Counter("b a c a b a d e e".split())  # a:3 b:2 e:2 c:1 d:1
    v = Vocab.build(counts, n_sentences=2)
    assert v.tokens == list(SPECIALS) + ["a", "b", "e", "c", "d"]  # count desc, ties by string
    assert v.counts == [0, 0, 2, 2, 3, 2, 2, 1, 1]
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert v.id("a") == 4 and v.id("zzz") == UNK_ID


def test_min_count_and_max_size_send_the_rest_to_unk():
    counts = Counter({"a": 5, "b": 4, "c": 2, "d": 1})
    v = Vocab.build(counts, n_sentences=3, min_count=2)
    assert v.tokens[4:] == ["a", "b", "c"]
    assert v.counts[UNK_ID] == 1
    v = Vocab.build(counts, n_sentences=3, max_size=2)
    assert v.tokens[4:] == ["a", "b"]
    assert v.counts[UNK_ID] == 3


def test_save_load_roundtrip(tmp_path):
    v = Vocab.build(Counter({"héllo": 3, "wörld": 3, "x": 1}), n_sentences=1)
    v.save(tmp_path / "vocab.txt")
    text = (tmp_path / "vocab.txt").read_text(encoding="utf-8")
    assert text.splitlines()[4] == "héllo\t3"
    w = Vocab.load(tmp_path / "vocab.txt")
    assert w.tokens == v.tokens and w.counts == v.counts


def test_load_errors_name_file_and_line(write):
    p = write("v.txt", "<PAD>\t0\n<UNK>\t0\n<S>\t1\n</S>\t1\nfoo 3\n")
    with pytest.raises(PipelineError, match=r"v\.txt:5: expected 'token<TAB>count'"):
        Vocab.load(p)
    p = write("w.txt", "a\t1\n")
    with pytest.raises(PipelineError, match="specials"):
        Vocab.load(p)
