"""CoNLL-U, the format of Universal Dependencies treebanks: tokens with their tags.

One token a line in 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC),
a blank line after each sentence, ``#`` comment lines before it (``# sent_id = ...`` is kept).
Multiword-token lines (ID ``1-2``: the surface form of several syntactic words) and empty nodes
(ID ``8.1``) are skipped: the syntactic words that follow a range are the tokens that carry tags.
See https://universaldependencies.org/format.html.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.lines import ReadStats, read_lines
from pipeline.data.tags import TaggedData
from pipeline.errors import PipelineError

COLUMNS = 10
TAG_COLUMNS = {"upos": 3, "xpos": 4}


def is_conllu(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".conllu"


def read_conllu(
    path: str | Path, tags: str = "upos", encoding_errors: str = "error", stats: ReadStats | None = None
) -> TaggedData:
    """The sentences of a CoNLL-U file with their ``tags`` ("upos" or "xpos") and sentence ids."""
    path = Path(path)
    col = TAG_COLUMNS[tags]
    out = TaggedData()
    toks: list[str] = []
    labels: list[str] = []
    sent_id, first_line = "", 0

    def flush() -> None:
        nonlocal toks, labels, sent_id
        if toks:
            out.sentences.append(toks)
            out.tags.append(labels)
            out.lines.append(first_line)
            out.ids.append(sent_id)
        toks, labels, sent_id = [], [], ""

    for lineno, line in enumerate(read_lines(path, encoding_errors, stats, what="CoNLL-U file"), start=1):
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep and key.strip() == "sent_id":
                sent_id = value.strip()
            continue
        cols = line.rstrip("\r\n").split("\t")
        if len(cols) != COLUMNS:
            raise PipelineError(
                f"{path}:{lineno}: expected {COLUMNS} tab-separated CoNLL-U columns, got {len(cols)}"
                + (" (a CoNLL column file? give it a name that does not end in .conllu)" if len(cols) < 6 else "")
            )
        if "-" in cols[0] or "." in cols[0]:  # a multiword token's range, or an empty node
            continue
        tag = cols[col]
        if tag == "_":
            other = "xpos" if tags == "upos" else "upos"
            raise PipelineError(
                f"{path}:{lineno}: no {tags.upper()} tag (column {col + 1} is '_'); "
                f"--set data.conllu_tags={other} reads the {other.upper()} column"
            )
        if not toks:
            first_line = lineno
        toks.append(cols[1])
        labels.append(tag)
    flush()
    return out
