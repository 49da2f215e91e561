import gzip
import json

import pytest

from pipeline.data.corpus import ReadStats, parse_hf_spec, read_corpus, split_sentences_raw
from pipeline.errors import PipelineError


def texts(spec, **kw):
    return [line.text for line in read_corpus(spec, **kw)]


def test_plain_file_keeps_blank_lines_and_positions(write):
    p = write("a.txt", "one two\n\nthree\r\n")
    lines = list(read_corpus(str(p)))
    assert [l.text for l in lines] == ["one two", "", "three"]
    assert [l.lineno for l in lines] == [1, 2, 3] and lines[0].source == str(p)


def test_gzip_directory_and_glob(write, tmp_path):
    (tmp_path / "d").mkdir()
    with gzip.open(tmp_path / "d" / "b.txt.gz", "wb") as f:
        f.write(b"gz line\n")
    write("d/a.txt", "a line\n")
    write("d/.hidden", "never\n")
    write("d/sub/c.txt", "c line\n")
    assert texts(str(tmp_path / "d")) == ["a line", "gz line", "c line"]
    assert texts(str(tmp_path / "d" / "**" / "*.txt")) == ["a line", "c line"]
    assert texts(str(tmp_path / "d" / "b.txt.gz")) == ["gz line"]


def test_missing_file_empty_glob_and_bad_gzip(write, tmp_path):
    with pytest.raises(PipelineError, match="nope.txt: corpus file not found"):
        texts(str(tmp_path / "nope.txt"))
    with pytest.raises(PipelineError, match="no files match"):
        texts(str(tmp_path / "*.zzz"))
    bad = write("bad.gz", b"this is not gzip")
    with pytest.raises(PipelineError, match="bad.gz: not a valid gzip file"):
        texts(str(bad))


def test_invalid_utf8_error_names_file_and_line(write):
    p = write("u.txt", b"fine\nbad \xff\xfe byte\n")
    with pytest.raises(PipelineError, match=r"u\.txt:2: invalid UTF-8 at byte 4"):
        texts(str(p), encoding_errors="error")
    stats = ReadStats()
    assert texts(str(p), encoding_errors="replace", stats=stats) == ["fine", "bad \ufffd\ufffd byte"]
    assert stats.replaced_utf8 == 1


def test_hf_local_dataset_streaming_and_not(tmp_path):
    d = tmp_path / "hfdata"
    d.mkdir()
    rows = [{"text": "first row", "label": 1}, {"text": "second\nrow", "label": 0}, {"text": None, "label": 2}]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for streaming in (True, False):
        lines = list(read_corpus(f"hf:{d}::train:text", hf_streaming=streaming))
        assert [l.text for l in lines] == ["first row", "second", "row", ""]
        assert [l.lineno for l in lines] == [1, 2, 2, 3]
    with pytest.raises(PipelineError, match="has no field 'body'"):
        texts(f"hf:{d}::train:body")
    with pytest.raises(PipelineError, match="cannot load Hugging Face dataset"):
        texts(f"hf:{d}::nosplit:text", hf_streaming=False)


def test_hf_spec_parsing():
    assert parse_hf_spec("hf:wikitext:wikitext-2-raw-v1:train:text") == (
        "wikitext",
        "wikitext-2-raw-v1",
        "train",
        "text",
    )
    assert parse_hf_spec("hf:imdb::test:text") == ("imdb", None, "test", "text")
    with pytest.raises(PipelineError, match="hf:NAME:CONFIG:SPLIT:FIELD"):
        parse_hf_spec("hf:wikitext:train")


def test_default_corpus_is_real_raw_sentences():
    from pipeline.data.tokenizers import PTBTokenizer

    lines = list(read_corpus("default"))
    assert len(lines) > 2000
    assert lines[0].text.startswith("Hundreds of people have been forced to vacate their homes")
    assert lines[0].text.endswith("Hill Top.")
    tok = PTBTokenizer()
    assert tok.tokenize(lines[0].text)[-3:] == ["Hill", "Top", "."]
    n_tokens = sum(len(tok.tokenize(l.text)) for l in lines)
    assert 55_000 < n_tokens < 70_000


def test_sentence_splitter():
    assert split_sentences_raw('He said "stop." Then 3 more. ok? Yes!') == [
        'He said "stop."',
        "Then 3 more. ok?",
        "Yes!",
    ]
