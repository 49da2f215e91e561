"""Tag schemes for chunk labels (IOB1, IOB2, BIOES), converted through spans, and a CoNLL reader.

Spans are ``(label, start, end)`` with ``end`` exclusive. Reading a tag sequence into spans is
lenient in a documented way: under IOB2 and BIOES an ``I-X`` that does not continue a chunk of
type ``X`` (e.g. after ``O``) starts a new chunk and is counted as repaired (``invalid: repair``),
or is an error naming the file and line (``invalid: error``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.data.lines import ReadStats, read_lines
from pipeline.errors import PipelineError

Scheme = Literal["iob1", "iob2", "bioes"]
Span = tuple[str, int, int]


# what an entity tag looks like, for guessing a file's kind (data/labelled.py one_example_per_line):
# broader than _split (BILOU's L-/U- too), so a file of such tags is still taken for CoNLL columns
# and its reader names the tag it cannot read
TAG_LIKE = re.compile(r"^(O|[BIESLU]-\S+)$")


class TagError(ValueError):
    """A tag a scheme cannot read, at ``position`` in its sentence."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.position = position


def _split(tag: str, i: int) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, label = tag.partition("-")
    if sep and label and prefix in ("L", "U"):
        raise TagError(
            f"tag {tag!r} is BILOU, which is not read: write L- as E- and U- as S- and set data.tag_scheme=bioes", i
        )
    if not sep or prefix not in ("B", "I", "E", "S") or not label:
        raise TagError(f"malformed tag {tag!r} (expected O or B-/I-/E-/S-LABEL)", i)
    return prefix, label


def to_spans(tags: list[str], scheme: Scheme) -> tuple[list[Span], list[int]]:
    """Tags → (spans, positions of tags that did not fit the scheme and were repaired)."""
    spans: list[Span] = []
    bad: list[int] = []
    cur: tuple[str, int] | None = None  # (label, start)

    def close(end: int) -> None:
        nonlocal cur
        if cur is not None:
            spans.append((cur[0], cur[1], end))
            cur = None

    for i, tag in enumerate(tags):
        prefix, label = _split(tag, i)
        if prefix == "O":
            close(i)
        elif prefix == "B":
            close(i)
            cur = (label, i)
        elif prefix == "I":
            if cur is None or cur[0] != label:
                if scheme != "iob1":
                    bad.append(i)
                close(i)
                cur = (label, i)
        elif prefix in ("E", "S"):
            if scheme != "bioes":
                raise TagError(
                    f"tag {tag!r} does not exist in {scheme.upper()}; for BIOES tags set data.tag_scheme=bioes", i
                )
            if prefix == "S" or cur is None or cur[0] != label:
                if prefix == "E":
                    bad.append(i)
                close(i)
                spans.append((label, i, i + 1))
            else:
                spans.append((label, cur[1], i + 1))
                cur = None
    close(len(tags))
    return spans, bad


def from_spans(spans: list[Span], n: int, scheme: Scheme) -> list[str]:
    tags = ["O"] * n
    prev_end: dict[int, str] = {}
    for label, s, e in sorted(spans, key=lambda x: x[1]):
        if scheme == "iob2":
            tags[s] = f"B-{label}"
            for i in range(s + 1, e):
                tags[i] = f"I-{label}"
        elif scheme == "iob1":
            for i in range(s, e):
                tags[i] = f"I-{label}"
            if prev_end.get(s) == label:  # a chunk right after one of the same type
                tags[s] = f"B-{label}"
        else:
            if e - s == 1:
                tags[s] = f"S-{label}"
            else:
                tags[s], tags[e - 1] = f"B-{label}", f"E-{label}"
                for i in range(s + 1, e - 1):
                    tags[i] = f"I-{label}"
        prev_end[e] = label
    return tags


def convert(tags: list[str], source: Scheme, target: Scheme) -> list[str]:
    return from_spans(to_spans(tags, source)[0], len(tags), target)


@dataclass
class TaggedData:
    sentences: list[list[str]] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    repaired: int = 0  # tags that did not fit the scheme and were repaired
    lines: list[int] = field(default_factory=list)  # the file line each sentence starts on
    ids: list[str] = field(default_factory=list)  # CoNLL-U: each sentence's sent_id ("" where none)


def _in_scheme(path: Path, first_line: int, tags: list[str], scheme: Scheme, target: Scheme, invalid: str):
    """One sentence's tags read under ``scheme`` and written in ``target``; (tags, repaired count)."""
    try:
        spans, bad = to_spans(tags, scheme)
    except TagError as e:
        hint = "; --task tag reads any per-token tags (POS, chunks)" if "malformed" in str(e) else ""
        raise PipelineError(f"{path}:{first_line + e.position}: {e}{hint}") from None
    if bad and invalid == "error":
        raise PipelineError(
            f"{path}:{first_line + bad[0]}: tag {tags[bad[0]]!r} does not continue a chunk "
            f"of its type under {scheme.upper()} (set invalid_tags: repair to accept it)"
        )
    return from_spans(spans, len(tags), target), len(bad)


def read_conll(
    path: str | Path,
    token_col: int = 0,
    label_col: int = -1,
    scheme: Scheme | None = "iob2",
    target: Scheme = "iob2",
    invalid: Literal["repair", "error"] = "repair",
    encoding_errors: str = "error",
    stats: ReadStats | None = None,
) -> TaggedData:
    """A CoNLL column file (blank line between sentences, ``-DOCSTART-`` lines skipped). ``scheme``
    None: the tags are any labels, kept as they are (no chunk scheme read or converted)."""
    path = Path(path)
    lines = read_lines(path, encoding_errors, stats, what="CoNLL file", soft_controls=True)
    out = TaggedData()
    toks: list[str] = []
    tags: list[str] = []
    first_line = 0
    n_cols = None

    def flush() -> None:
        nonlocal toks, tags
        if not toks:
            return
        read, repaired = (tags, 0) if scheme is None else _in_scheme(path, first_line, tags, scheme, target, invalid)
        out.repaired += repaired
        out.sentences.append(toks)
        out.lines.append(first_line)
        out.tags.append(read)
        toks, tags = [], []

    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            flush()
            continue
        cols = line.split()
        if cols[0] == "-DOCSTART-":
            flush()
            continue
        if n_cols is None:
            n_cols = len(cols)
            if n_cols < 2 or token_col % n_cols == label_col % n_cols:
                raise PipelineError(
                    f"{path}:{lineno}: expected a token and a label column (columns {token_col} "
                    f"and {label_col}), got {n_cols} column(s)"
                )
        if len(cols) != n_cols:
            # a tab-separated field holding several words: a sentence per line, not a token per line
            hint = (
                "; this looks like a sentence-per-line TSV: a CoNLL file has one token per line "
                "(for a sentence classifier use --task classify)"
                if "\t" in line and len(line.split("\t")) < len(cols)
                else ""
            )
            raise PipelineError(
                f"{path}:{lineno}: expected {n_cols} columns like the first data line, got {len(cols)}{hint}"
            )
        try:
            token, tag = cols[token_col], cols[label_col]
        except IndexError:
            raise PipelineError(
                f"{path}:{lineno}: no column {token_col} or {label_col} in {len(cols)} columns"
            ) from None
        if not toks:
            first_line = lineno
        toks.append(token)
        tags.append(tag)
    flush()
    return out
