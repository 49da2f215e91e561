"""Labelled sentences for classification: TSV, CSV (with a header row) or JSONL, any field names.

Each reader returns texts and labels in file order; a row without the text or label field, or with
the wrong number of columns, is an error naming the file and line. Rows whose text is empty are
skipped and counted (``empty``), so a stray blank row does not stop a run.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.data.lines import ReadStats, read_lines


@dataclass
class LabelledData:
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    empty: int = 0
    lines: list[int] = field(default_factory=list)  # the file line of each kept row


def read_classification(path: str | Path, text_field: str = "sentence", label_field: str = "label",
                        fmt: str | None = None, encoding_errors: str = "error",
                        stats: ReadStats | None = None) -> LabelledData:
    """Read ``path`` (format from ``fmt`` or the suffix: .tsv, .csv, .jsonl/.json)."""
    path = Path(path)
    fmt = fmt or {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(path.suffix.lower())
    if fmt not in ("tsv", "csv", "jsonl"):
        raise PipelineError(f"{path}: unknown format; name it .tsv, .csv or .jsonl (or give the format)")
    lines = read_lines(path, encoding_errors, stats)
    out = LabelledData()

    def add(lineno: int, t, y) -> None:
        if t is None or y is None:
            missing = text_field if t is None else label_field
            raise PipelineError(f"{path}:{lineno}: no {missing!r} field")
        t, y = str(t).strip(), str(y).strip()
        if not y:
            raise PipelineError(f"{path}:{lineno}: empty label")
        if not t:
            out.empty += 1
            return
        out.texts.append(t)
        out.labels.append(y)
        out.lines.append(lineno)

    if fmt == "jsonl":
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PipelineError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise PipelineError(f"{path}:{lineno}: expected a JSON object per line")
            add(lineno, row.get(text_field), row.get(label_field))
        return out

    # why csv for TSV too: quoting rules; QUOTE_NONE for TSV because SST text contains bare quotes
    rows = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",",
                      quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    header = next(rows, None)
    if header is None:
        raise PipelineError(f"{path}: empty file (a header row naming the fields is expected)")
    for name in (text_field, label_field):
        if name not in header:
            raise PipelineError(f"{path}:1: header has no {name!r} column (columns: {', '.join(header)})")
    ti, li = header.index(text_field), header.index(label_field)
    for lineno, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise PipelineError(f"{path}:{lineno}: expected {len(header)} columns like the header, got {len(row)}")
        add(lineno, row[ti], row[li])
    return out
