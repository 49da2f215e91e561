import random

import pytest

from pipeline.data.tags import convert, from_spans, read_conll, to_spans
from pipeline.errors import PipelineError


def random_spans(rng, n):
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.4:
            length = rng.randint(1, 3)
            spans.append((rng.choice(["PER", "LOC"]), i, min(n, i + length)))
            i += length
        else:
            i += rng.randint(1, 2)
    return spans


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "bioes"])
def test_spans_round_trip_through_every_scheme(scheme):
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 12)
        spans = random_spans(rng, n)
        tags = from_spans(spans, n, scheme)
        back, bad = to_spans(tags, scheme)
        assert back == spans and bad == []
        for other in ("iob1", "iob2", "bioes"):
            assert convert(convert(tags, scheme, other), other, scheme) == tags


def test_scheme_examples_by_hand():
    iob2 = ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert convert(iob2, "iob2", "iob1") == ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    assert convert(iob2, "iob2", "bioes") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    spans, bad = to_spans(["O", "I-PER", "I-PER"], "iob2")  # invalid under IOB2: repaired
    assert spans == [("PER", 1, 3)] and bad == [1]


def test_read_conll(write):
    p = write(
        "d.txt",
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n\n"
        "Peter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n",
    )
    d = read_conll(p, scheme="iob1", target="iob2")
    assert d.sentences == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert d.tags == [["B-ORG", "O"], ["B-PER", "I-PER"]] and d.repaired == 0


def test_read_conll_bad_input(write):
    with pytest.raises(PipelineError, match=r"c\.txt:2: expected 4 columns like the first data line, got 3"):
        read_conll(write("c.txt", "EU NNP B-NP B-ORG\nrejects VBZ O\n"))
    with pytest.raises(
        PipelineError,
        match=r"s\.tsv:2: expected 2 columns like the first data line, got 4; this "
        r"looks like a sentence-per-line TSV: .* use --task classify",
    ):
        read_conll(write("s.tsv", "sentence\tlabel\na fine film\t1\n"))
    p = write("i.txt", "a X X O\nb X X I-PER\n")
    with pytest.raises(PipelineError, match=r"i\.txt:2: tag 'I-PER' does not continue a chunk"):
        read_conll(p, invalid="error")
    d = read_conll(p)
    assert d.tags == [["O", "B-PER"]] and d.repaired == 1
    with pytest.raises(PipelineError, match=r"m\.txt:1: malformed tag 'X-PER'"):
        read_conll(write("m.txt", "a X-PER\n"))
