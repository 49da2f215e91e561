"""Labelled sentences for classification: TSV, CSV (with a header row) or JSONL, any field names.

Each reader returns texts and labels in file order; a row without the text or label field, or with
the wrong number of columns, is an error naming the file and line. Rows whose text is empty are
skipped and counted (``empty``), so a stray blank row does not stop a run.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.data.lines import ReadStats, read_lines
from pipeline.data.tags import TAG_LIKE
from pipeline.errors import PipelineError


@dataclass
class LabelledData:
    """Texts (a ``(text, text)`` tuple per pair) and their targets (labels, scores or label lists),
    in file order; ``empty``: rows skipped for an empty text."""

    texts: list = field(default_factory=list)
    labels: list = field(default_factory=list)
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
    if not Path(path).is_file():  # missing, or a pipe that a sniff would wait on: the reader says which
        return False
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


Field = str | int  # a header name or JSONL key, or a 0-based column number (no header row)


@dataclass
class Rows:
    """The rows of a labelled file, each the raw values of the fields asked for (by role: the
    config key that names the field, e.g. ``text_field``), and the file line each starts on.
    ``names``: the header row's names (TSV/CSV with a header) or the first JSONL object's keys."""

    path: Path
    fmt: Format
    fields: dict = field(default_factory=dict)  # role → the name or column number read
    values: list[dict[str, object]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"

    def json_type_error(self, i: int, role: str, expected: str) -> PipelineError:
        value = self.values[i][role]
        return PipelineError(f"{self.where(i)}: field {self.fields[role]!r} is a JSON {json_type(value)}{expected}")


CONLL_SUFFIXES = (".conll", ".conllu", ".conllx", ".iob", ".bio")


def looks_like_conll(path: Path, sample_lines: int = 50) -> bool:
    """A CoNLL name, or a file of a token and its tags per line (most sampled lines end in a tag)."""
    if path.suffix.lower() in CONLL_SUFFIXES:
        return True
    if not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [line.split() for line in itertools.islice(f, 10 * sample_lines) if line.strip()][:sample_lines]
    except (OSError, ValueError):
        return False
    rows = [w for w in lines if 2 <= len(w) <= 12 and TAG_LIKE.match(w[-1])]
    return bool(lines) and len(rows) * 2 > len(lines)


def check_format(path: Path, fmt: str | None) -> Format:
    fmt = fmt or format_of(path)
    if fmt not in ("tsv", "csv", "jsonl") and looks_like_conll(Path(path)):
        raise PipelineError(
            f"{path}: CoNLL columns (a token and its tags per line), not a text per line: --task ner "
            f"(entity tags) or --task tag (any tags) reads it; this task reads TSV, CSV or JSONL files"
        )
    if fmt not in ("tsv", "csv", "jsonl"):
        raise PipelineError(
            f"{path}: cannot tell the format from the file name; give it with "
            f"--format tsv (or csv, jsonl; `data.format` in a config file)"
        )
    return fmt  # type: ignore[return-value]


def read_fields(
    path: str | Path,
    fields: dict[str, Field],
    fmt: str | None = None,
    encoding_errors: str = "error",
    stats: ReadStats | None = None,
    header: bool | None = None,
    pick: Callable[[list[str]], dict[str, Field]] | None = None,
) -> Rows:
    """The ``fields`` (role → name or column number) of every row of a TSV/CSV/JSONL file (format
    from ``fmt`` or the suffix: .tsv, .csv, .jsonl/.json). ``pick(names)``, given the header row's
    names (or the first JSONL object's keys), may add fields found by name (e.g. the two texts of
    a pair). ``header`` None: a TSV/CSV header row exactly when the fields are names."""
    path = Path(path)
    rows = Rows(path, check_format(path, fmt), fields)  # `pick` may add fields to it
    lines = read_lines(path, encoding_errors, stats, soft_controls=True)
    if rows.fmt == "jsonl":
        numbers = [role for role, f in fields.items() if isinstance(f, int)]
        if numbers:
            raise PipelineError(f"{path}: JSONL rows are read by key: {', '.join(fields)} must be names")
        _read_jsonl(lines, fields, rows, pick)
    else:
        _read_columns(lines, fields, header, rows, pick)
    return rows


def _read_jsonl(lines: list[str], fields: dict[str, Field], out: Rows, pick) -> None:
    path = out.path
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise PipelineError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise PipelineError(f"{path}:{lineno}: expected a JSON object per line")
        if not out.names:
            out.names = [str(k) for k in row]
            fields.update(pick(out.names) if pick else {})
        for name in fields.values():
            if row.get(name) is None:
                raise PipelineError(
                    f"{path}:{lineno}: no {name!r} field (set {'/'.join(fields)} to the "
                    f"keys of your rows: {', '.join(map(str, row))})"
                )
        out.values.append({role: row[name] for role, name in fields.items()})
        out.lines.append(lineno)


def json_type(value) -> str:
    return {bool: "boolean", dict: "object", list: "array", float: "number", int: "number"}.get(type(value), "value")


def _column_indexes(path: Path, first: list[str] | None, fields: dict[str, Field], header: bool | None, pick):
    """(role → column index, whether row 1 is a header) for a TSV/CSV file."""
    numbers = [isinstance(f, int) for f in fields.values()]
    by_number = all(numbers)
    if any(numbers) and not by_number:
        raise PipelineError(f"{path}: give {' and '.join(fields)} all as names or all as column numbers")
    header = (not by_number) if header is None else header
    if first is None:
        raise PipelineError(f"{path}: empty file" + (" (a header row naming the fields is expected)" if header else ""))
    if by_number:
        for role, i in fields.items():
            if not -len(first) <= int(i) < len(first):
                raise PipelineError(f"{path}:1: {role} {i} is out of range: the row has {len(first)} columns")
        return {role: int(i) for role, i in fields.items()}, header
    if not header:
        raise PipelineError(
            f"{path}: without a header row, give {' and '.join(fields)} as column numbers "
            f"(e.g. --set data.text_field=1 --set data.label_field=0)"
        )
    fields.update(pick(first) if pick else {})
    conll = (
        " (one space-separated column: a CoNLL file? NER data needs --task ner)"
        if (len(first) == 1 and " " in first[0])
        else ""
    )
    for name in fields.values():
        if name not in first:
            raise PipelineError(
                f"{path}:1: header has no {name!r} column (columns: {', '.join(first)}){conll}; set "
                f"{'/'.join(fields)} to its names, or to column numbers for a file without "
                f"a header row (e.g. --set data.text_field=1 --set data.label_field=0)"
            )
    return {role: first.index(str(name)) for role, name in fields.items()}, True


def _read_columns(lines: list[str], fields: dict[str, Field], header, out: Rows, pick) -> None:
    # why csv for TSV too: quoting rules; QUOTE_NONE for TSV because SST text contains bare quotes
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # a long text is data, not an error (default 128 kB)
    rows = csv.reader(
        lines,
        delimiter="\t" if out.fmt == "tsv" else ",",
        quoting=csv.QUOTE_NONE if out.fmt == "tsv" else csv.QUOTE_MINIMAL,
        strict=True,
    )
    try:
        _read_rows(rows, fields, header, out, pick)
    except csv.Error as e:  # e.g. a quote left open at the end of a CSV file
        raise PipelineError(f"{out.path}:{rows.line_num}: malformed {out.fmt.upper()} ({e})") from None


def _with_line_numbers(rows):
    """(file line where the record starts, record): a quoted CSV field may span several lines."""
    start = 1
    for row in rows:
        yield start, row
        start = rows.line_num + 1


def _read_rows(rows, fields: dict[str, Field], header, out: Rows, pick) -> None:
    numbered = _with_line_numbers(rows)
    _, first = next(numbered, (1, None))
    index, has_header = _column_indexes(out.path, first, fields, header, pick)
    assert first is not None  # _column_indexes refuses an empty file
    width = len(first)
    if has_header:
        out.names = list(first)
    else:
        numbered = itertools.chain([(1, first)], numbered)
    for lineno, row in numbered:
        if not row:
            continue
        if len(row) != width:
            what = "the header" if has_header else "the first row"
            raise PipelineError(f"{out.path}:{lineno}: expected {width} columns like {what}, got {len(row)}")
        out.values.append({role: row[i] for role, i in index.items()})
        out.lines.append(lineno)
    if header is None and not has_header:
        _refuse_a_header_read_as_data(out, first)


NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?: [A-Za-z0-9_]+)?")  # a column name: one or two plain words


def _refuse_a_header_read_as_data(rows: Rows, first: list[str]) -> None:
    """A file read by column numbers whose first row looks like a header (every field a plain
    name, and its label occurring in no other row) would train on that row as an example."""
    if len(rows.values) < 3 or "label_field" not in rows.values[0]:
        return
    label = str(rows.values[0]["label_field"]).strip()
    if not all(NAME_LIKE.fullmatch(f.strip()) for f in first) or label.isdigit():
        return
    if any(str(v["label_field"]).strip() == label for v in rows.values[1:]):
        return
    raise PipelineError(
        f"{rows.path}:1: the first row ({', '.join(first)}) looks like a header: its label {label!r} occurs "
        f"in no other row; set data.header=true (fields may stay column numbers), or data.header=false "
        f"if it is data"
    )


Target = Callable[[Rows, int], object]  # the target of row i, or an error naming its file and line


def texts_and_targets(rows: Rows, target: Target) -> LabelledData:
    """Each row's text (a ``(text, text)`` tuple where a ``text_pair_field`` was read) and
    ``target(rows, i)``; a JSONL text must be a string. Rows with an empty text are skipped and
    counted, after their target is checked."""
    out = LabelledData()
    for i, v in enumerate(rows.values):
        roles = [r for r in ("text_field", "text_pair_field") if r in v]
        for role in roles:
            if rows.fmt == "jsonl" and not isinstance(v[role], str):
                raise rows.json_type_error(i, role, ", not a string")
        y = target(rows, i)
        texts = [str(v[r]).strip() for r in roles]
        if not all(texts):
            out.empty += 1
            continue
        out.texts.append(tuple(texts) if len(texts) == 2 else texts[0])
        out.labels.append(y)
        out.lines.append(rows.lines[i])
    return out


def label_value(rows: Rows, i: int) -> str:
    """Row i's label (``label_field``): a string or, in JSONL, an integer; not empty."""
    value = rows.values[i]["label_field"]
    if rows.fmt == "jsonl" and (isinstance(value, bool) or not isinstance(value, (str, int))):
        raise rows.json_type_error(i, "label_field", "; a label is a string or an integer")
    label = str(value).strip()
    if not label:
        raise PipelineError(f"{rows.where(i)}: empty label")
    return label


def score_value(rows: Rows, i: int) -> float:
    """Row i's score (``label_field``): a finite number, or text that reads as one."""
    value = rows.values[i]["label_field"]
    try:
        if isinstance(value, bool):
            raise ValueError
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PipelineError(f"{rows.where(i)}: the score {value!r} is not a number (regress reads numbers)") from None
    if not math.isfinite(score):
        raise PipelineError(f"{rows.where(i)}: the score {value!r} is not a finite number")
    return score


def label_list(value, separator: str, where: str) -> list[str]:
    """The labels of one example: a JSON list of strings/integers, or text split on ``separator``."""
    if isinstance(value, list):
        if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in value):
            raise PipelineError(f"{where}: a label list holds strings or integers, got {value!r}")
        return [str(x).strip() for x in value if str(x).strip()]
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [x.strip() for x in str(value).split(separator) if x.strip()]
    raise PipelineError(f"{where}: labels are a JSON list or text separated by {separator!r}, got {value!r}")


def zero_one_columns(rows: Rows) -> list[str]:
    """The ``label:NAME`` fields of ``rows`` whose values are all 0 or 1 (NAME, in file order)."""
    names = [role[6:] for role in (rows.values[0] if rows.values else {}) if role.startswith("label:")]
    return [n for n in names if all(str(v[f"label:{n}"]).strip() in ("0", "1") for v in rows.values)]


def read_classification(
    path: str | Path,
    text_field: str | int = "sentence",
    label_field: str | int = "label",
    fmt: str | None = None,
    encoding_errors: str = "error",
    stats: ReadStats | None = None,
    header: bool | None = None,
) -> LabelledData:
    """Texts and labels of a TSV/CSV/JSONL file (see :func:`read_fields`, :func:`label_value`);
    rows with empty text are skipped and counted."""
    rows = read_fields(
        path, {"text_field": text_field, "label_field": label_field}, fmt, encoding_errors, stats, header
    )
    return texts_and_targets(rows, label_value)


def conll_tags_look_like_entities(path: str | Path, label_column: int = -1, sample_lines: int = 200) -> bool | None:
    """Whether a CoNLL column file's tags (its first ``sample_lines`` token lines) are all entity
    tags (O, B-X, I-X, ...); None when the file cannot be read or holds no token line."""
    if not Path(path).is_file():
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = [line.split() for line in itertools.islice(f, 10 * sample_lines)]
    except (OSError, ValueError):
        return None
    tags = [r[label_column] for r in rows if len(r) >= 2 and r[0] != "-DOCSTART-" and -len(r) <= label_column < len(r)]
    if not tags:
        return None
    return all(TAG_LIKE.match(t) for t in tags[:sample_lines])
