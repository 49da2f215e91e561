"""Labelled sentences for classification: TSV, CSV (with a header row) or JSONL, any field names.

Each reader returns texts and labels in file order; a row without the text or label field, or with
the wrong number of columns, is an error naming the file and line. Rows whose text is empty are
skipped and counted (``empty``), so a stray blank row does not stop a run.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.data.lines import ReadStats, read_lines
from pipeline.data.tags import TAG_LIKE
from pipeline.errors import PipelineError


@dataclass
class LabelledData:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    empty: int = 0
    lines: list[int] = field(default_factory=list)  # the file line of each kept row


Format = Literal["tsv", "csv", "jsonl"]


def one_example_per_line(path: str | Path, sample_lines: int = 50) -> bool:
    """Whether a labelled file holds one example per line (a .csv/.jsonl name, or tab-separated
    lines with a field of several words or whose last field is not an entity tag) rather than CoNLL
    columns of one token per line; judged on its first ``sample_lines`` non-blank lines. An
    unreadable file is left to the reader's error (False)."""
    if format_of(path) in ("csv", "jsonl"):
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line for line in itertools.islice(f, 10 * sample_lines) if line.strip()][:sample_lines]
    except (OSError, ValueError):
        return False
    tabbed = [line.strip().split("\t") for line in lines if "\t" in line]
    several_words = [fields for fields in tabbed if any(" " in f.strip() for f in fields)]
    tagged = [fields for fields in tabbed if TAG_LIKE.match(fields[-1].strip())]  # token<TAB>tag: CoNLL
    return len(tabbed) * 2 > len(lines) and (len(several_words) * 2 > len(lines) or len(tagged) * 2 < len(tabbed))


def format_of(path: str | Path) -> Format | None:
    """A labelled file's format from its name (.tsv, .csv, .jsonl/.json), None when it says nothing."""
    formats: dict[str, Format] = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
    return formats.get(Path(path).suffix.lower())


def read_classification(
    path: str | Path,
    text_field: str | int = "sentence",
    label_field: str | int = "label",
    fmt: str | None = None,
    encoding_errors: str = "error",
    stats: ReadStats | None = None,
    header: bool | None = None,
) -> LabelledData:
    """Read ``path`` (format from ``fmt`` or the suffix: .tsv, .csv, .jsonl/.json).

    TSV/CSV fields are header names, or 0-based column numbers for a file without a header row
    (``header`` None: a header row exactly when the fields are names)."""
    path = Path(path)
    fmt = fmt or format_of(path)
    if fmt not in ("tsv", "csv", "jsonl"):
        raise PipelineError(
            f"{path}: cannot tell the format from the file name; give it with "
            f"--format tsv (or csv, jsonl; `format:` in a config file)"
        )
    lines = read_lines(path, encoding_errors, stats, soft_controls=True)
    out = LabelledData()
    if fmt == "jsonl":
        if isinstance(text_field, int) or isinstance(label_field, int):
            raise PipelineError(f"{path}: JSONL rows are read by key: text_field and label_field must be names")
        _read_jsonl(path, lines, text_field, label_field, out)
    else:
        _read_columns(path, lines, fmt, text_field, label_field, header, out)
    return out


def _add(out: LabelledData, path: Path, lineno: int, t, y) -> None:
    t, y = str(t).strip(), str(y).strip()
    if not y:
        raise PipelineError(f"{path}:{lineno}: empty label")
    if not t:
        out.empty += 1
        return
    out.texts.append(t)
    out.labels.append(y)
    out.lines.append(lineno)


def _read_jsonl(path: Path, lines: list[str], text_field: str, label_field: str, out: LabelledData) -> None:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise PipelineError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise PipelineError(f"{path}:{lineno}: expected a JSON object per line")
        for name in (text_field, label_field):
            if row.get(name) is None:
                raise PipelineError(
                    f"{path}:{lineno}: no {name!r} field (set text_field/label_field to the "
                    f"keys of your rows: {', '.join(map(str, row))})"
                )
        text, label = row[text_field], row[label_field]
        if not isinstance(text, str):
            raise PipelineError(f"{path}:{lineno}: field {text_field!r} is a JSON {_json_type(text)}, not a string")
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise PipelineError(
                f"{path}:{lineno}: field {label_field!r} is a JSON {_json_type(label)}; "
                f"a label is a string or an integer"
            )
        _add(out, path, lineno, text, label)


def _json_type(value) -> str:
    return {bool: "boolean", dict: "object", list: "array", float: "number", int: "number"}.get(type(value), "value")


def _column_indexes(path: Path, first: list[str] | None, text_field, label_field, header: bool | None):
    """(text index, label index, whether row 1 is a header) for a TSV/CSV file."""
    by_number = isinstance(text_field, int) and isinstance(label_field, int)
    if isinstance(text_field, int) != isinstance(label_field, int):
        raise PipelineError(f"{path}: give text_field and label_field both as names or both as column numbers")
    header = (not by_number) if header is None else header
    if first is None:
        raise PipelineError(f"{path}: empty file" + (" (a header row naming the fields is expected)" if header else ""))
    if by_number:
        for name, i in (("text_field", text_field), ("label_field", label_field)):
            if not -len(first) <= i < len(first):
                raise PipelineError(f"{path}:1: {name} {i} is out of range: the row has {len(first)} columns")
        return text_field, label_field, header
    if not header:
        raise PipelineError(
            f"{path}: without a header row, give text_field and label_field as column numbers "
            f"(e.g. --set text_field=1 --set label_field=0)"
        )
    conll = (
        " (one space-separated column: a CoNLL file? NER data needs --task ner)"
        if (len(first) == 1 and " " in first[0])
        else ""
    )
    for name in (text_field, label_field):
        if name not in first:
            raise PipelineError(
                f"{path}:1: header has no {name!r} column (columns: {', '.join(first)}){conll}; set "
                f"text_field/label_field to its names, or to column numbers for a file without "
                f"a header row (e.g. --set text_field=1 --set label_field=0)"
            )
    return first.index(text_field), first.index(label_field), True


def _read_columns(path: Path, lines: list[str], fmt: str, text_field, label_field, header, out: LabelledData) -> None:
    # why csv for TSV too: quoting rules; QUOTE_NONE for TSV because SST text contains bare quotes
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # a long text is data, not an error (default 128 kB)
    rows = csv.reader(
        lines,
        delimiter="\t" if fmt == "tsv" else ",",
        quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
        strict=True,
    )
    try:
        _read_rows(path, rows, text_field, label_field, header, out)
    except csv.Error as e:  # e.g. a quote left open at the end of a CSV file
        raise PipelineError(f"{path}:{rows.line_num}: malformed {fmt.upper()} ({e})") from None


def _with_line_numbers(rows):
    """(file line where the record starts, record): a quoted CSV field may span several lines."""
    start = 1
    for row in rows:
        yield start, row
        start = rows.line_num + 1


def _read_rows(path: Path, rows, text_field, label_field, header, out: LabelledData) -> None:
    numbered = _with_line_numbers(rows)
    _, first = next(numbered, (1, None))
    ti, li, has_header = _column_indexes(path, first, text_field, label_field, header)
    assert first is not None  # _column_indexes refuses an empty file
    width = len(first)
    if not has_header:
        numbered = itertools.chain([(1, first)], numbered)
    for lineno, row in numbered:
        if not row:
            continue
        if len(row) != width:
            what = "the header" if has_header else "the first row"
            raise PipelineError(f"{path}:{lineno}: expected {width} columns like {what}, got {len(row)}")
        _add(out, path, lineno, row[ti], row[li])


def conll_tags_look_like_entities(path: str | Path, label_column: int = -1, sample_lines: int = 200) -> bool | None:
    """Whether a CoNLL column file's tags (its first ``sample_lines`` token lines) are all entity
    tags (O, B-X, I-X, ...); None when the file cannot be read or holds no token line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = [line.split() for line in itertools.islice(f, 10 * sample_lines)]
    except (OSError, ValueError):
        return None
    tags = [r[label_column] for r in rows if len(r) >= 2 and r[0] != "-DOCSTART-" and -len(r) <= label_column < len(r)]
    if not tags:
        return None
    return all(TAG_LIKE.match(t) for t in tags[:sample_lines])
