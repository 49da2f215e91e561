"""Labelled data of a task: reading CoNLL and TSV/CSV/JSONL files, tag sets, unknown-label checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import FinetuneConfig
from pipeline.data.tags import Scheme, to_spans
from pipeline.errors import PipelineError


@dataclass
class TaskData:
    """Tokenized sentences with their targets: a tag list per sentence (ner, tag) or one label (classify)."""

    path: str
    sentences: list[list[str]]
    targets: list  # list[list[str]] (ner, tag) or list[str] (classify)
    lines: list[int]  # the file line each example starts on (for messages)
    repaired: int = 0  # ner: tags that did not fit the scheme and were repaired
    replaced_lines: int = 0  # lines with invalid UTF-8 or control characters replaced (encoding_errors: replace)
    skipped_empty: int = 0  # classify: rows with empty text
    controls_as_space: int = 0  # lines whose control characters (not NUL) were read as spaces
    glued_punctuation: int = 0  # classify: tokens with punctuation glued on ("good."): raw text split on spaces
    tokens: int = 0
    ids: list[str] = field(default_factory=list)  # CoNLL-U: each sentence's sent_id


def tokenizer_for(encoder):
    """How a task model splits raw text: as its encoder does, else the ptb tokenizer (which also
    reads text already tokenized so), as the word2vec stage's default corpus was."""
    if encoder is not None:
        return encoder.tokenize
    from pipeline.data.tokenizers import PTBTokenizer

    return PTBTokenizer().tokenize


def as_token_lists(sentences, tokenize) -> list[list[str]]:
    """Sentences for ``predict``/``scores``: each a token list (kept) or raw text (``tokenize``d, as
    ``Encoder.embed`` does); anything else is a one-line error."""
    if isinstance(sentences, (str, bytes)):
        raise PipelineError("expected a list of sentences, got one string: wrap it in a list ([text])")
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, str):
            out.append(tokenize(s))
        elif isinstance(s, (list, tuple)) and all(isinstance(t, str) for t in s):
            out.append(list(s))
        else:
            what = type(s).__name__ if not isinstance(s, (list, tuple)) else f"a {type(s).__name__} of non-strings"
            raise PipelineError(f"sentence {i}: expected raw text (str) or a list of token strings, got {what}")
    return out


def read_tagged(cfg: FinetuneConfig, path: str | Path, tokenize=str.split) -> TaskData:
    """Entity tags: a CoNLL column file as ``cfg`` describes it (columns, tag scheme), converted to
    ``model_scheme``; ``tokenize`` is unused (the file is tokenized)."""
    return read_token_tags(cfg, path, cfg.tag_scheme)


def read_token_tags(cfg: FinetuneConfig, path: str | Path, scheme=None) -> TaskData:
    """Per-token tags: a CoNLL-U file (``.conllu``, the ``conllu_tags`` column) or CoNLL columns
    (``token_column``, ``label_column``); ``scheme``: the columns' chunk scheme (read, repaired and
    converted to ``model_scheme``), None: any tags, kept as they are."""
    from pipeline.data.conllu import is_conllu, read_conllu
    from pipeline.data.lines import ReadStats
    from pipeline.data.tags import read_conll

    stats = ReadStats()
    if scheme is None and is_conllu(path):
        d = read_conllu(path, cfg.conllu_tags, cfg.encoding_errors, stats)
    else:
        col = (cfg.token_column, cfg.label_column)
        d = read_conll(path, *col, scheme, cfg.model_scheme, cfg.invalid_tags, cfg.encoding_errors, stats)
    return TaskData(
        str(path),
        d.sentences,
        d.tags,
        d.lines,
        repaired=d.repaired,
        replaced_lines=stats.replaced_utf8,
        controls_as_space=stats.controls_as_space,
        ids=d.ids,
    )


def read_labelled_sentences(cfg: FinetuneConfig, path: str | Path, tokenize=str.split) -> TaskData:
    """A TSV/CSV/JSONL file of texts and labels as ``cfg`` describes it, each text ``tokenize``d."""
    from pipeline.data.labelled import read_classification
    from pipeline.data.lines import ReadStats
    from pipeline.data.tokenizers import count_glued

    stats = ReadStats()
    d = read_classification(path, cfg.text_field, cfg.label_field, cfg.format, cfg.encoding_errors, stats, cfg.header)
    sentences = [tokenize(t) for t in d.texts]
    return TaskData(
        str(path),
        sentences,
        d.labels,
        d.lines,
        skipped_empty=d.empty,
        replaced_lines=stats.replaced_utf8,
        controls_as_space=stats.controls_as_space,
        glued_punctuation=sum(count_glued(s) for s in sentences),
        tokens=sum(len(s) for s in sentences),
    )


def tag_set(train: TaskData, scheme: Scheme) -> list[str]:
    """ "O" and every B-/I-(/E-/S-) tag of each entity type in the training data, sorted by type."""
    types = sorted({label for tags in train.targets for label, _, _ in to_spans(tags, scheme)[0]})
    prefixes = ("B", "I") if scheme == "iob2" else ("B", "I", "E", "S")
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def check_labels(data: TaskData, labels: list[str], labels_in: Callable[[Any], list[str]]) -> None:
    """A dev/test label the model cannot predict is an error naming its file and line.
    ``labels_in``: the labels of one target (a tag list, or one label)."""
    known = set(labels)
    for i, target in enumerate(data.targets):
        bad = [t for t in labels_in(target) if t not in known]
        if bad:
            raise PipelineError(
                f"{data.path}:{data.lines[i]}: label {bad[0]!r} does not occur in the training "
                f"data (known: {', '.join(labels[:12])}{' ...' if len(labels) > 12 else ''})"
            )
