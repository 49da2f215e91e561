"""Corpus readers: one sentence (or paragraph) per line, from any of these sources.

A corpus spec is one string:

=============================  =======================================================
``path/to/file.txt``           a UTF-8 text file, one sentence per line
``path/to/file.txt.gz``        the same, gzip-compressed
``path/to/dir``                every non-hidden file below it, sorted by path
``path/**/*.txt``              a glob (``**`` recurses), matches sorted by path
``hf:NAME:CONFIG:SPLIT:FIELD`` ``datasets.load_dataset(NAME, CONFIG, split=SPLIT)[FIELD]``;
                               NAME may be a hub name (``wikitext``) or a local data
                               directory; CONFIG may be empty (``hf:my_dir::train:text``)
``default``                    the embedded corpus (below)
=============================  =======================================================

Every reader yields :class:`Line` records carrying where the line came from, so that any later
error can name the file and line. Invalid UTF-8 either stops with such an error or is replaced
by U+FFFD and counted (``encoding_errors``).

The embedded default corpus is real text that an installed dependency ships: the Lee news
corpus (300 ABC news articles, ~60k words) in gensim's test data (``lee_background.cor``,
one article per line). It is cut into sentences (raw text: the prepare stage's tokenizer splits
the words), so the default pipeline needs no network and no repository data.
"""

from __future__ import annotations

import glob as globlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pipeline.data.lines import Line, ReadStats, clean_text, iter_lines, split_text_lines
from pipeline.errors import PipelineError

# --- plain files -----------------------------------------------------------------------------


def _expand(spec: str) -> list[Path]:
    """Files named by a path, directory or glob spec, sorted; errors if there are none."""
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in globlib.glob(spec, recursive=True) if Path(p).is_file())
        if not files:
            raise PipelineError(f"{spec}: no files match this pattern")
        return files
    path = Path(spec)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        if not files:
            raise PipelineError(f"{spec}: directory contains no files")
        return files
    if not path.exists():
        raise PipelineError(f"{spec}: corpus file not found")
    return [path]


# --- Hugging Face datasets -------------------------------------------------------------------


def parse_hf_spec(spec: str) -> tuple[str, str | None, str, str]:
    parts = spec[len("hf:") :].split(":")
    if len(parts) != 4 or not parts[0] or not parts[2] or not parts[3]:
        raise PipelineError(
            f"{spec}: a Hugging Face corpus spec is hf:NAME:CONFIG:SPLIT:FIELD "
            f"(CONFIG may be empty), e.g. hf:wikitext:wikitext-2-raw-v1:train:text"
        )
    name, config, split, fld = parts
    return name, (config or None), split, fld


def _read_hf(spec: str, streaming: bool, errors: str, stats: ReadStats) -> Iterator[Line]:
    name, config, split, fld = parse_hf_spec(spec)
    import datasets  # imported here: the pretraining path must not need it

    stats.sources.append(spec)
    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=streaming)
    except Exception as e:  # datasets raises many types (hub, network, missing split, bad files)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PipelineError(f"{spec}: cannot load Hugging Face dataset: {msg}") from None
    columns = getattr(ds, "column_names", None)
    if columns is not None and fld not in columns:
        raise PipelineError(f"{spec}: dataset has no field {fld!r} (fields: {', '.join(columns)})")
    for row_no, row in enumerate(ds, start=1):
        if fld not in row:
            raise PipelineError(f"{spec}: row {row_no} has no field {fld!r} (fields: {', '.join(row)})")
        value = row[fld]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise PipelineError(f"{spec}: row {row_no}: field {fld!r} is {type(value).__name__}, not text")
        stats.lines += 1
        # A row may hold several lines (raw WikiText rows hold one line each; others may not).
        for text in split_text_lines(value):
            text, replaced = clean_text(text, f"{spec}: row {row_no}", errors)
            stats.replaced_utf8 += replaced
            yield Line(text, spec, row_no)


# --- the embedded default corpus -------------------------------------------------------------

# Sentence ends: . ! ? (optionally followed by a closing quote) before whitespace and a capital,
# digit or opening quote. Abbreviations such as "Mr. Smith" are cut too; good enough for a demo.
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])|(?<=[.!?][\"'])\s+")


def split_sentences_raw(text: str) -> list[str]:
    return [s for s in _SENT_END.split(text.strip()) if s]


def default_corpus_path() -> Path:
    from gensim.test.utils import datapath

    return Path(datapath("lee_background.cor"))


def _read_default(stats: ReadStats) -> Iterator[Line]:
    path = default_corpus_path()
    inner = ReadStats()  # the installed path differs per machine: record the corpus by name
    stats.sources.append("default (gensim test data: lee_background.cor)")
    for doc in iter_lines(path, "replace", inner):
        stats.lines += 1
        for sentence in split_sentences_raw(doc.text):
            yield Line(sentence, "lee_background.cor", doc.lineno)  # raw: prepare's tokenizer splits it


# --- entry point -----------------------------------------------------------------------------


def read_corpus(
    spec: str,
    encoding_errors: Literal["error", "replace"] = "replace",
    hf_streaming: bool = True,
    stats: ReadStats | None = None,
) -> Iterator[Line]:
    """Yield every line of the corpus named by ``spec`` (blank lines included, unstripped)."""
    stats = stats if stats is not None else ReadStats()
    if spec == "default":
        yield from _read_default(stats)
    elif spec.startswith("hf:"):
        yield from _read_hf(spec, hf_streaming, encoding_errors, stats)
    else:
        for path in _expand(os.path.expanduser(spec)):
            yield from iter_lines(path, encoding_errors, stats, what="corpus file")
