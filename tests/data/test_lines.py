"""The one text-reading path: line ends, separators, BOM, control characters, binary files."""

import gzip

import pytest

from pipeline.data.lines import ReadStats, input_lines, iter_lines, read_lines
from pipeline.errors import PipelineError


def test_lines_end_only_at_newline_and_separators_become_spaces(write):
    p = write("a.txt", "one\u0085two\r\nthree\u2028four\u2029five\x0bsix\x0cseven\x1cend\nlast\rline\n")
    assert read_lines(p) == ["one two", "three four five six seven end", "last line"]


def test_crlf_gz_and_no_final_newline(tmp_path):
    p = tmp_path / "a.txt.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"first\r\nsecond")
    assert read_lines(p) == ["first", "second"]


def test_a_leading_bom_is_removed_and_counted(write):
    stats = ReadStats()
    p = write("bom.txt", "\ufeffthe cat\nsat \ufeff here\n")
    assert read_lines(p, stats=stats) == ["the cat", "sat \ufeff here"]  # only the file's first BOM
    assert stats.bom == 1


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"ok\none\x00two\n", r"x.txt:2: control character U\+0000 at column 4"),
        (b"ok\nbell\x07\n", r"x.txt:2: control character U\+0007"),
        (b"ok\nbad \xff byte\n", r"x.txt:2: invalid UTF-8 at byte 4"),
        ("ok\nc1 \u009b\n".encode(), r"x.txt:2: control character U\+009B"),
    ],
)
def test_bad_characters_are_errors_naming_file_and_line_or_replaced_and_counted(write, raw, message):
    p = write("x.txt", raw)
    with pytest.raises(PipelineError, match=message):
        read_lines(p)
    stats = ReadStats()
    lines = read_lines(p, "replace", stats)
    assert lines[0] == "ok" and "\ufffd" in lines[1] and stats.replaced_utf8 == 1


def test_tabs_are_kept(write):
    assert read_lines(write("t.tsv", "a\tb\n")) == ["a\tb"]


def test_binary_files_are_refused_in_either_mode(write):
    p = write("b.bin", bytes(range(256)) * 64)
    for errors in ("error", "replace"):
        with pytest.raises(PipelineError, match="b.bin: looks like a binary file"):
            read_lines(p, errors)
    nuls = write("n.txt", b"a\x00\nb\x00\nc\n")
    with pytest.raises(PipelineError, match="looks like a binary file"):
        read_lines(nuls, "replace")


def test_text_in_an_8_bit_encoding_is_not_binary_and_says_how_to_read_it(write):
    p = write("l.txt", "café crème\nnaïve\n".encode("cp1252"))
    with pytest.raises(PipelineError, match=r"l\.txt: not UTF-8: 2 of the first 2 lines .* \(Latin-1 or cp1252\?\)"):
        read_lines(p)
    assert read_lines(p, "replace") == ["caf\ufffd cr\ufffdme", "na\ufffdve"]


def test_long_files_are_read_across_chunks(write):
    text = "".join(f"line {i} " + "x" * (i % 300) + "\n" for i in range(5000))
    p = write("long.txt", text)
    assert read_lines(p) == text.split("\n")[:-1]
    assert [n for n, _ in input_lines(p)][-1] == 4999


def test_missing_and_directory_inputs(tmp_path):
    with pytest.raises(PipelineError, match="nope.txt: input file not found"):
        list(input_lines(tmp_path / "nope.txt"))
    with pytest.raises(PipelineError, match="is a directory"):
        list(input_lines(tmp_path))
    with pytest.raises(PipelineError, match="vocabulary file not found"):
        list(iter_lines(tmp_path / "v.txt", what="vocabulary file"))


def test_every_reader_uses_the_same_lines(write, tmp_path):
    """The labelled, CoNLL and vocabulary readers and prepare read lines the same way."""
    from pipeline.config import PrepareConfig
    from pipeline.data.labelled import read_classification
    from pipeline.data.prepare import prepare_corpus
    from pipeline.data.tags import read_conll
    from pipeline.data.vocab import Vocab

    tsv = write("s.tsv", "\ufeffsentence\tlabel\na fine\u0085film\tpos\nawful\u2028stuff\tneg\n")
    d = read_classification(tsv)
    assert d.texts == ["a fine film", "awful stuff"] and d.lines == [2, 3]
    conll = write("n.conll", "\ufeffJohn B-PER\nran O\n\nParis\x0cB-LOC\n")
    d = read_conll(conll)
    assert d.sentences == [["John", "ran"], ["Paris"]] and d.tags == [["B-PER", "O"], ["B-LOC"]]
    with pytest.raises(PipelineError, match=r"n2.conll:2: control character U\+0000"):
        read_conll(write("n2.conll", "John B-PER\nr\x00an O\n"))
    corpus = write("c.txt", "\ufeffthe cat sat\n" + "the dog ran\n" * 20)
    stats = prepare_corpus(
        PrepareConfig(corpus=str(corpus), valid_fraction=0.1, test_fraction=0.1, min_count=1),
        tmp_path / "prep",
        progress=False,
    )
    tokens = Vocab.load(tmp_path / "prep" / "vocab.txt").tokens
    assert "the" in tokens and not any("\ufeff" in t for t in tokens)
    assert stats["byte_order_marks_removed"] == 1


def test_labelled_files_read_control_characters_as_spaces(tmp_path):
    """A stray C1 character (U+0097: a cp1252 dash decoded as Latin-1 upstream) or C0 control in a
    labelled file is read as a space and counted; NUL and invalid UTF-8 keep the strict policy."""
    from pipeline.data.labelled import read_classification

    p = tmp_path / "l.tsv"
    p.write_bytes("sentence\tlabel\ngreat \u0097 really\tpos\nbell\x07 here\tneg\nplain\tpos\n".encode())
    stats = ReadStats()
    d = read_classification(p, stats=stats)
    assert d.texts == ["great   really", "bell  here", "plain"] and stats.controls_as_space == 2
    p.write_bytes(b"sentence\tlabel\nnul\x00 here\tpos\n")
    with pytest.raises(PipelineError, match=r"l.tsv:2: control character U\+0000"):
        read_classification(p)
    assert read_lines(write_bytes(tmp_path, "c.txt", "c1 \u0097\n".encode()), "replace") == ["c1 \ufffd"]


def write_bytes(d, name, data):
    (d / name).write_bytes(data)
    return d / name
