import re

import pytest

from pipeline.data.labelled import one_example_per_line, read_classification
from pipeline.errors import PipelineError

from conftest import shared


def test_tsv_csv_jsonl(write):
    d = read_classification(write("a.tsv", 'label\tsentence\n1\tIt \'s "good" .\n0\t   \n0\tbad\n'))
    assert d.texts == ['It \'s "good" .', "bad"] and d.labels == ["1", "0"] and d.empty == 1
    d = read_classification(write("a.csv", 'text,y\n"a, b",pos\nc,neg\n'), text_field="text", label_field="y")
    assert d.texts == ["a, b", "c"] and d.labels == ["pos", "neg"]
    d = read_classification(
        write("a.jsonl", '{"text": "x y", "label": 2}\n\n{"text": "z", "label": 0}\n'), text_field="text"
    )
    assert d.texts == ["x y", "z"] and d.labels == ["2", "0"]


def test_one_example_per_line_tells_sentence_files_from_conll_columns(write, tmp_path):
    assert one_example_per_line(write("s.tsv", "label\tsentence\npos\tA fine film .\nneg\tDull .\nneg\tNot good\n"))
    assert one_example_per_line(write("s.txt", "A fine film .\tpos\nVery dull indeed\tneg\n"))  # any name
    assert one_example_per_line(write("w.tsv", "good\tpos\nbad\tneg\nfine\tpos\n"))  # one-word texts
    assert one_example_per_line(write("c.csv", "text,label\nx,1\n")) and one_example_per_line(tmp_path / "none.jsonl")
    assert not one_example_per_line(write("c.conll", "-DOCSTART- O\n\nEU NNP B-ORG\nrejects VBZ O\n"))
    assert not one_example_per_line(write("t.tsv", "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n"))  # tab CoNLL
    assert not one_example_per_line(tmp_path / "missing.tsv") and not one_example_per_line(tmp_path)


def test_bad_rows_name_file_and_line(write):
    with pytest.raises(PipelineError, match=r"b\.tsv:3: expected 2 columns like the header, got 3"):
        read_classification(write("b.tsv", "label\tsentence\n1\tok\n1\tx\ty\n"))
    with pytest.raises(PipelineError, match=r"b\.jsonl:2: no 'sentence' field"):
        read_classification(write("b.jsonl", '{"sentence": "a", "label": 1}\n{"text": "b", "label": 0}\n'))
    with pytest.raises(PipelineError, match=r"h\.tsv:1: header has no 'sentence' column"):
        read_classification(write("h.tsv", "label\ttext\n1\ta\n"))
    with pytest.raises(PipelineError, match=r"j\.jsonl:1: not valid JSON"):
        read_classification(write("j.jsonl", "{nope\n"))


@pytest.mark.slow
def test_sst_counts():
    for name, n in (("sst5_train.tsv", 8_544), ("sst5_test.tsv", 2_210), ("sst2_train.tsv", 6_920)):
        d = read_classification(shared("sst", name))
        assert len(d.texts) == n and d.empty == 0
    assert set(read_classification(shared("sst", "sst5_dev.tsv")).labels) == {"0", "1", "2", "3", "4"}


def test_files_without_a_header_row_by_column_number(write):
    from pipeline.data.labelled import read_classification

    tsv = write("sst.tsv", "1\tA lovely film .\n0\tDull .\n")  # label first, no header
    d = read_classification(tsv, text_field=1, label_field=0)
    assert d.texts == ["A lovely film .", "Dull ."] and d.labels == ["1", "0"] and d.lines == [1, 2]
    csv_file = write("data.txt", "great stuff,pos\nawful,neg\n")  # any name, with an explicit format
    d = read_classification(csv_file, text_field=0, label_field=1, fmt="csv")
    assert d.labels == ["pos", "neg"]
    d = read_classification(write("h.tsv", "label\ttext\n1\tok .\n"), text_field=1, label_field=0, header=True)
    assert d.texts == ["ok ."] and d.lines == [2]


@pytest.mark.parametrize(
    "name, text, kwargs, message",
    [
        ("x.dat", "a\tb\n", {}, "cannot tell the format from the file name; give it with --format tsv"),
        ("s.tsv", "1\tA film .\n", {}, r"header has no 'sentence' column \(columns: 1, A film \.\); set text_field"),
        (
            "s.tsv",
            "1\tA film .\n",
            {"header": False},
            "without a header row, give text_field and label_field as column numbers",
        ),
        (
            "s.tsv",
            "1\tA film .\n",
            {"text_field": 5, "label_field": 0},
            "text_field 5 is out of range: the row has 2 columns",
        ),
        (
            "s.tsv",
            "1\tA film .\n0\tB\tC\n",
            {"text_field": 1, "label_field": 0},
            r"s.tsv:2: expected 2 columns like the first row, got 3",
        ),
        (
            "s.jsonl",
            '{"text": "a", "y": 1}\n',
            {},
            r"no 'sentence' field \(set text_field/label_field to the keys of your rows: text, y\)",
        ),
    ],
)
def test_unrecognised_files_say_which_option_to_give(write, name, text, kwargs, message):
    from pipeline.data.labelled import read_classification

    with pytest.raises(PipelineError, match=message):
        read_classification(write(name, text), **kwargs)


def test_csv_errors_name_the_file_line_where_the_record_starts(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text('sentence,label\n"two\nlines",1\n"three\nlines\nhere",0\nbad,1,extra\n')
    with pytest.raises(PipelineError, match=r"t.csv:7: expected 2 columns"):
        read_classification(f)
    f.write_text('sentence,label\n"two\nlines",1\nfine,\n')
    with pytest.raises(PipelineError, match=r"t.csv:4: empty label"):
        read_classification(f)


@pytest.mark.parametrize(
    "row, expect",
    [
        ('{"sentence": {"a": 1}, "label": "1"}', "field 'sentence' is a JSON object, not a string"),
        ('{"sentence": "ok", "label": [1]}', "field 'label' is a JSON array; a label is a string or an integer"),
        ('{"sentence": "ok", "label": true}', "field 'label' is a JSON boolean"),
    ],
)
def test_jsonl_fields_of_the_wrong_json_type_are_refused(tmp_path, row, expect):
    f = tmp_path / "t.jsonl"
    f.write_text('{"sentence": "fine", "label": 1}\n' + row + "\n")
    with pytest.raises(PipelineError, match=rf"t.jsonl:2: {re.escape(expect)}"):
        read_classification(f)
