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
    sentences: list  # token lists, or (token list, token list) pairs
    targets: list  # list[list[str]] (ner, tag, multilabel), list[str] (classify, pair), list[float] (regress)
    lines: list[int]  # the file line each example starts on (for messages)
    repaired: int = 0  # ner: tags that did not fit the scheme and were repaired
    replaced_lines: int = 0  # lines with invalid UTF-8 or control characters replaced (encoding_errors: replace)
    skipped_empty: int = 0  # classify: rows with empty text
    controls_as_space: int = 0  # lines whose control characters (not NUL) were read as spaces
    glued_punctuation: int = 0  # classify: tokens with punctuation glued on ("good."): raw text split on spaces
    tokens: int = 0
    ids: list[str] = field(default_factory=list)  # CoNLL-U: each sentence's sent_id
    label_names: list[str] = field(default_factory=list)  # multilabel: the file's 0/1 label columns

    @property
    def pairs(self) -> bool:
        """Whether its examples are pairs of texts (``(tokens, tokens)``)."""
        return bool(self.sentences) and isinstance(self.sentences[0], tuple)


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


def as_examples(items, tokenize, pairs: bool = False) -> list:
    """Examples for ``predict``: token lists (:func:`as_token_lists`), or with ``pairs`` a
    ``(token list, token list)`` per pair given as two strings or two token lists."""
    if not pairs:
        return as_token_lists(items, tokenize)
    if isinstance(items, (str, bytes)):
        raise PipelineError("expected a list of (text, text) pairs, got one string")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise PipelineError(f"example {i}: a pair model takes (text, text) pairs, got {type(item).__name__}")
        a, b = as_token_lists(list(item), tokenize)
        out.append((a, b))
    return out


def line_example(text: str, tokenize, pairs: bool, where: str):
    """One input line of ``elmo predict``: a text, or with ``pairs`` two texts separated by a tab."""
    if not pairs:
        return tokenize(text)
    parts = text.split("\t")
    if len(parts) != 2:
        raise PipelineError(
            f"{where}: a pair model reads two texts per line separated by a tab, got {len(parts)} field(s)"
        )
    return tokenize(parts[0]), tokenize(parts[1])


def read_tagged(cfg: FinetuneConfig, path: str | Path, tokenize=str.split) -> TaskData:
    """Entity tags: a CoNLL column file as ``cfg`` describes it (columns, tag scheme), converted to
    ``model_scheme``; ``tokenize`` is unused (the file is tokenized)."""
    return read_token_tags(cfg, path, cfg.data.tag_scheme)


def read_token_tags(cfg: FinetuneConfig, path: str | Path, scheme=None) -> TaskData:
    """Per-token tags: a CoNLL-U file (``.conllu``, the ``conllu_tags`` column) or CoNLL columns
    (``token_column``, ``label_column``); ``scheme``: the columns' chunk scheme (read, repaired and
    converted to ``model_scheme``), None: any tags, kept as they are."""
    from pipeline.data.conllu import is_conllu, read_conllu
    from pipeline.data.lines import ReadStats
    from pipeline.data.tags import read_conll

    stats = ReadStats()
    if scheme is None and is_conllu(path):
        d = read_conllu(path, cfg.data.conllu_tags, cfg.data.encoding_errors, stats)
    else:
        col = (cfg.data.token_column, cfg.data.label_column)
        d = read_conll(
            path, *col, scheme, cfg.head.model_scheme, cfg.data.invalid_tags, cfg.data.encoding_errors, stats
        )
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


# the two text fields of a pair, by the names people's files use (GLUE / Hugging Face datasets, SICK)
PAIR_NAMES = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
    ("text", "text_pair"),
    ("sentence_A", "sentence_B"),
    ("sentence_a", "sentence_b"),
    ("text_a", "text_b"),
    ("question", "sentence"),
)


def read_text_examples(
    cfg: FinetuneConfig, path: str | Path, tokenize, target: Callable, pairs: bool | None = None
) -> TaskData:
    """A TSV/CSV/JSONL file of texts (or pairs of texts) and targets as ``cfg`` describes it, each
    text ``tokenize``d; ``target(rows, i)`` reads row i's target (``data.labelled.label_value``,
    ``score_value``). ``pairs`` True: every example is two texts; None: two texts when
    ``text_pair_field`` is set, or when the header has no ``text_field`` but a known pair of names
    (:data:`PAIR_NAMES`); False: one text."""
    from pipeline.data.labelled import read_fields, texts_and_targets
    from pipeline.data.lines import ReadStats

    stats = ReadStats()
    picker = pair_picker(cfg, path, pairs)
    rows = read_fields(
        path, text_fields(cfg, path, pairs), cfg.data.format, cfg.data.encoding_errors, stats, cfg.data.header, picker
    )
    return tokenized(path, texts_and_targets(rows, target), tokenize, stats)


def tokenized(path, data, tokenize, stats) -> TaskData:
    """TaskData of a labelled file's texts and targets (``data.labelled.LabelledData``), each text
    ``tokenize``d; ``stats``: how its lines were read."""
    from pipeline.data.tokenizers import count_glued

    sentences = [tuple(tokenize(x) for x in t) if isinstance(t, tuple) else tokenize(t) for t in data.texts]
    texts = [s for e in sentences for s in sides(e)]
    return TaskData(
        str(path),
        sentences,
        data.labels,
        data.lines,
        skipped_empty=data.empty,
        replaced_lines=stats.replaced_utf8,
        controls_as_space=stats.controls_as_space,
        glued_punctuation=sum(count_glued(s) for s in texts),
        tokens=sum(len(s) for s in texts),
    )


def text_fields(cfg: FinetuneConfig, path, pairs: bool | None) -> dict:
    """The fields to read (role → name or column number) before the header is seen."""
    fields = {"text_field": cfg.data.text_field, "label_field": cfg.data.label_field}
    if cfg.data.text_pair_field is not None and pairs is not False:
        fields["text_pair_field"] = cfg.data.text_pair_field
    elif pairs and isinstance(cfg.data.label_field, int):
        raise PipelineError(
            f"{path}: without a header row, give the second text's column too: "
            f"--set data.text_pair_field=N (and text_field, label_field as column numbers)"
        )
    return fields


def pair_picker(cfg: FinetuneConfig, path, pairs: bool | None):
    """``pick(names)`` for :func:`read_fields`: the two text fields found by name, for a pair task
    (or a file without ``text_field`` that names a pair) whose ``text_pair_field`` is not set."""

    def pick(names: list[str]) -> dict:
        if cfg.data.text_pair_field is not None or pairs is False or (not pairs and cfg.data.text_field in names):
            return {}
        found = next(((a, b) for a, b in PAIR_NAMES if a in names and b in names), None)
        if found is not None:
            return {"text_field": found[0], "text_pair_field": found[1]}
        if pairs:
            raise PipelineError(
                f"{path}:1: no pair of text fields among {', '.join(names)} (looked for "
                f"{', '.join('/'.join(p) for p in PAIR_NAMES[:4])}, ...); set text_field and "
                f"text_pair_field to their names"
            )
        return {}

    return pick


def read_multilabel(cfg: FinetuneConfig, path: str | Path, tokenize) -> TaskData:
    """A TSV/CSV/JSONL file of texts with 0 or more labels each: ``label_field`` holds them (a JSON
    list, or text split on ``label_separator``: ``joy,love``), or, where the header (or the first
    JSON object) has no such field, every other column whose values are all 0/1 is a label named
    by its header (SemEval-2018 E-c, the usual export of a multi-label data set)."""
    from pipeline.data.labelled import label_list, read_fields, texts_and_targets, zero_one_columns
    from pipeline.data.lines import ReadStats

    fields: dict = {"text_field": cfg.data.text_field}
    by_column = False

    def pick(names: list[str]) -> dict:
        nonlocal by_column
        if cfg.data.label_field in names:
            return {"label_field": cfg.data.label_field}
        by_column = True
        return {f"label:{n}": n for n in names if n != cfg.data.text_field}

    if isinstance(cfg.data.label_field, int):
        fields["label_field"] = cfg.data.label_field
    stats = ReadStats()
    rows = read_fields(path, fields, cfg.data.format, cfg.data.encoding_errors, stats, cfg.data.header, pick)
    columns = zero_one_columns(rows) if by_column else []
    if by_column and not columns:
        raise PipelineError(
            f"{path}:1: no {cfg.data.label_field!r} field and no 0/1 label columns; set label_field to a field of "
            f"labels separated by {cfg.data.label_separator!r}, or give one 0/1 column per label"
        )

    def labels_of(rows, i: int) -> list[str]:
        v = rows.values[i]
        if by_column:
            return sorted(c for c in columns if str(v[f"label:{c}"]).strip() == "1")
        return sorted(set(label_list(v["label_field"], cfg.data.label_separator, rows.where(i))))

    out = tokenized(path, texts_and_targets(rows, labels_of), tokenize, stats)
    out.label_names = columns
    return out


def check_same_shape(data: TaskData, pairs: bool, other: str) -> None:
    """``data`` holds pairs of texts exactly when ``other`` (e.g. "train.tsv holds", "models/m was
    trained on") does: else one line naming the file."""
    if data.pairs != pairs:
        what = {True: "pairs of texts", False: "one text per example"}
        hint = "" if pairs else " (set text_field to the text column)"
        raise PipelineError(f"{data.path}: holds {what[data.pairs]}; {other} {what[pairs]}{hint}")


def sides(example) -> list[list[str]]:
    """The token lists of one example: one (a text) or two (a pair)."""
    return list(example) if isinstance(example, tuple) else [example]


def example_length(example) -> int:
    return sum(len(s) for s in sides(example))


def tag_set(train: TaskData, scheme: Scheme) -> list[str]:
    """ "O" and every B-/I-(/E-/S-) tag of each entity type in the training data, sorted by type."""
    types = sorted({label for tags in train.targets for label, _, _ in to_spans(tags, scheme)[0]})
    prefixes = ("B", "I") if scheme == "iob2" else ("B", "I", "E", "S")
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def short(text: str, width: int = 30) -> str:
    """``text`` cut to ``width`` characters for a message (a label that is really a sentence)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def check_labels_look_like_labels(data: TaskData, labels: list[str]) -> None:
    """Many labels of several words each are texts: the text and label fields given the wrong way round."""
    wordy = [label for label in labels if len(label.split()) >= 3]
    if len(labels) > 20 and len(wordy) * 2 > len(labels):
        raise PipelineError(
            f"{data.path}: {len(labels)} different labels, most of several words (e.g. {short(wordy[0])!r}): "
            f"that is text; are the text and label fields the wrong way round? "
            f"(--set data.text_field=... --set data.label_field=...)"
        )


def check_labels(data: TaskData, labels: list[str], labels_in: Callable[[Any], list[str]], unseen_ok: bool = False):
    """A dev/test label the model cannot predict is an error naming its file and line; with
    ``unseen_ok`` (tags, where a rare tag of dev may be missing from a small training set) it is
    counted instead, and a note line returned (None when every label is known).
    ``labels_in``: the labels of one target (a tag list, or one label)."""
    known = set(labels)
    unseen = 0
    for i, target in enumerate(data.targets):
        bad = [t for t in labels_in(target) if t not in known]
        if bad and unseen_ok:
            unseen += len(bad)
        elif bad:
            raise PipelineError(
                f"{data.path}:{data.lines[i]}: label {short(bad[0])!r} does not occur in the training "
                f"data (known: {', '.join(map(short, labels[:12]))}{' ...' if len(labels) > 12 else ''})"
            )
    if unseen:
        return f"note: {data.path}: {unseen} tokens have tags that never occur in the training data (scored as errors)"
    return None
