"""The kinds of downstream task, as types: what differs between tagging tokens (``tag``, ``ner``)
and labelling sentences (``classify``) lives here, once: the shape of an example and of its
target, how labelled files are read, the label set, the head, the loss, decoding, scores (with one
primary metric), prediction records and the score report.

Every task model asks its task for these through :func:`task_named`, the one place a task name is
looked up; the model types say which task shapes they learn (:mod:`pipeline.tasks.models`). A new
task = one :class:`Task` subclass + an entry in :data:`TASKS` (and its name in
``config.TaskName``).
"""

from __future__ import annotations

import typing
from collections import Counter
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from pipeline.config import FinetuneConfig, TaskName
from pipeline.data.labelled import label_value, score_value
from pipeline.data.tags import to_spans
from pipeline.errors import PipelineError
from pipeline.tasks.crf import crf_constraints
from pipeline.tasks.examples import (
    TaskData,
    read_multilabel,
    read_tagged,
    read_text_examples,
    read_token_tags,
    tag_set,
)
from pipeline.tasks.heads import Classifier, LabelSetHead, PairClassifier, ScoreHead, Tagger
from pipeline.tasks.metrics import (
    classification_scores,
    multilabel_scores,
    ner_scores,
    regression_scores,
    tag_scores,
    tune_thresholds,
)

# a classifier's training labels are imbalanced when the commonest is at least this many times as
# frequent as the rarest (a 75/25 binary set); `model: auto` then picks by macro-F1
IMBALANCED = 3


class Task:
    """One kind of task. ``metric``: the dev score that picks the best model (higher is better).
    ``example``: what one example is (a token sequence, or a text); ``target``: what is predicted
    for it (a tag per token, or one label). The model types choose the tasks they learn by these."""

    name: str
    title: str  # what it is, in words (model cards)
    metric: str
    example: Literal["tokens", "text", "pair"]  # "text": one text, or a pair where the file has two
    target: Literal["tags", "label", "labels", "score"]
    reads: str  # what its labelled files are, for messages
    trivial_hint: str  # said when the dev score never beat a model that learned nothing
    unseen_labels_ok = False  # a dev/test label missing from train: counted (True) or an error

    def read(self, cfg: FinetuneConfig, path, tokenize=str.split) -> TaskData:
        raise NotImplementedError

    def label_set(self, cfg: FinetuneConfig, train: TaskData) -> list[str]:
        raise NotImplementedError

    def labels_in(self, target) -> list[str]:
        """The labels of one target (for unknown-label checks)."""
        raise NotImplementedError

    def trivial_score(self, dev: TaskData) -> float:
        """The dev score of a model that learned nothing."""
        raise NotImplementedError

    def selection_metric(self, train: TaskData) -> str:
        """The dev score that picks among ``model: auto``'s candidates for this training data."""
        return self.metric

    def build_head(
        self, cfg: FinetuneConfig, input_dim: int, extra_dim: int, labels: list[str], pairs: bool = False
    ) -> nn.Module:
        """The BiLSTM model's head; ``pairs``: its examples are pairs of texts."""
        raise NotImplementedError

    def init_head(self, head: nn.Module, train: TaskData) -> None:
        """Settings a new head takes from the training data (a score head's scale)."""

    def after_training(self, model, dev: TaskData) -> bool:
        """What a trained model still picks on dev (a multi-label model's thresholds); True when
        that changed its predictions' scores."""
        return False

    def loss(self, head: nn.Module, inputs: tuple, targets: list, index: dict[str, int]) -> torch.Tensor:
        """Mean loss of a batch; ``inputs`` = (x, mask, extra) from the features."""
        raise NotImplementedError

    output_name: str  # what :meth:`outputs` is, the name of an ONNX export's output

    def outputs(self, cfg: FinetuneConfig, head: nn.Module, inputs: tuple) -> torch.Tensor:
        """What the head answers for a batch, before decoding: probabilities, scores or tag scores
        (the output of an ONNX export, :mod:`pipeline.tasks.onnx`)."""
        raise NotImplementedError

    def decode(
        self, cfg: FinetuneConfig, head: nn.Module, outputs: torch.Tensor, batch: list, labels: list[str]
    ) -> list:
        """One prediction per example of ``batch`` from its :meth:`outputs` (the head gives what
        decoding needs besides them: a CRF's transitions, a multi-label head's thresholds)."""
        raise NotImplementedError

    empty_prediction: Any = None  # the prediction for an empty sentence

    def scores(self, cfg: FinetuneConfig, targets: list, pred: list, labels: list[str]) -> dict:
        raise NotImplementedError

    def record(self, cfg: FinetuneConfig, tokens: list[str], pred) -> dict:
        """A JSON-able prediction record of one sentence (``elmo predict``)."""
        raise NotImplementedError

    def report(self, scores: dict, where: str, n: int, top: int = 20) -> list[str]:
        """The lines ``elmo evaluate`` prints for ``n`` examples of ``where``."""
        raise NotImplementedError


class TagTask(Task):
    """A tag per token (part of speech, chunks, slots: any tag set), BiLSTM-CRF without transition
    constraints; scored by token accuracy (span F1 beside it when the tags are B-/I-/O-like).
    Reads CoNLL columns (``token_column``, ``label_column``) or CoNLL-U (``.conllu``: UPOS, or
    XPOS with ``conllu_tags: xpos``). Targets are tag lists."""

    name = "tag"
    title = "token tagging"
    metric = "accuracy"
    example = "tokens"
    target = "tags"
    output_name = "emissions"  # (B, T, K) tag scores, decoded by the CRF
    reads = "CoNLL columns or CoNLL-U"
    unseen_labels_ok = True  # a rare tag (NN|SYM) of dev may be missing from a small training set
    trivial_hint = (
        "hint: the dev token accuracy never beat always predicting the most frequent tag ({trivial:.4f}). "
        "Check the columns (--set data.token_column=N --set data.label_column=N), and train longer (--epochs) "
        "or with another --lr"
    )
    empty_prediction: list = []

    def read(self, cfg, path, tokenize=str.split):
        return read_token_tags(cfg, path)

    def label_set(self, cfg, train):
        labels = sorted({t for tags in train.targets for t in tags})
        if len(labels) < 2:
            raise PipelineError(f"{train.path}: only one tag ({labels[0]!r}); a tagger needs at least two")
        return labels

    def labels_in(self, target):
        return list(target)

    def trivial_score(self, dev):
        counts = Counter(t for tags in dev.targets for t in tags)
        return max(counts.values()) / sum(counts.values()) if counts else 0.0

    def build_head(self, cfg, input_dim, extra_dim, labels, pairs=False):
        return Tagger(input_dim, len(labels), cfg.head.hidden, cfg.head.dropout, extra_dim=extra_dim)

    def loss(self, head, inputs, targets, index):
        x, mask, extra = inputs
        y = torch.zeros(mask.shape, dtype=torch.long, device=mask.device)
        for b, tags in enumerate(targets):
            y[b, : len(tags)] = torch.tensor([index[t] for t in tags])
        return head.loss(x, mask, y, extra)

    def outputs(self, cfg, head, inputs):
        return head.emissions(*inputs)  # (B, T, K)

    def decode(self, cfg, head, outputs, batch, labels):
        lengths = torch.tensor([len(e) for e in batch])
        mask = torch.arange(outputs.shape[1])[None, :] < lengths[:, None]
        return [[labels[t] for t in path] for path in head.crf.viterbi(outputs, mask)]

    def scores(self, cfg, targets, pred, labels):
        return tag_scores(targets, pred, labels)

    def record(self, cfg, tokens, pred):
        return {"tokens": tokens, "tags": pred}

    def report(self, scores, where, n, top: int = 20):
        spans = f"; span F1 {scores['span_f1']:.4f}" if "span_f1" in scores else ""
        lines = [f"{where}: {n} sentences, {scores['tokens']} tokens; token accuracy {scores['accuracy']:.4f}{spans}"]
        return lines + most_supported(scores["per_tag"], top, 8, "tags")


class NerTask(TagTask):
    """Entity tags (IOB1/IOB2/BIOES, converted to ``model_scheme``), BiLSTM-CRF whose transitions
    keep the scheme; scored by entity-level F1. Reads CoNLL columns."""

    name = "ner"
    title = "named-entity tagging"
    metric = "f1"
    reads = "CoNLL columns"
    unseen_labels_ok = False
    trivial_hint = (
        "hint: the dev F1 stayed 0. Check the columns (--set data.token_column=N --set data.label_column=N), the tag "
        "scheme (--set data.tag_scheme=iob1|iob2|bioes), and train longer (--epochs) or with another --lr"
    )

    def read(self, cfg, path, tokenize=str.split):
        return read_tagged(cfg, path, tokenize)

    def label_set(self, cfg, train):
        return tag_set(train, cfg.head.model_scheme)

    def trivial_score(self, dev):
        return 0.0  # no entities

    def build_head(self, cfg, input_dim, extra_dim, labels, pairs=False):
        allowed, start = crf_constraints(labels, cfg.head.model_scheme)
        return Tagger(input_dim, len(labels), cfg.head.hidden, cfg.head.dropout, allowed, start, extra_dim=extra_dim)

    def scores(self, cfg, targets, pred, labels):
        return ner_scores(targets, pred, cfg.head.model_scheme)

    def record(self, cfg, tokens, pred):
        spans, _ = to_spans(pred, cfg.head.model_scheme) if tokens else ([], 0)
        entities = [{"label": lab, "start": s, "end": e, "text": " ".join(tokens[s:e])} for lab, s, e in spans]
        return {"tokens": tokens, "tags": pred, "entities": entities}

    def report(self, scores, where, n, top: int = 20):
        lines = [
            f"{where}: {n} sentences; entity precision {scores['precision']:.4f} "
            f"recall {scores['recall']:.4f} F1 {scores['f1']:.4f}"
        ]
        return lines + [score_line(t, s, 8) for t, s in scores["per_type"].items()]


class ClassifyTask(Task):
    """One label per text (or per pair of texts, where the file has two); scored by accuracy
    (macro-F1 and the confusion matrix beside it; the positive class's F1 when binary). A
    prediction is ``(label, {label: probability})``."""

    name = "classify"
    title = "sentence classification"
    metric = "accuracy"
    example: Literal["tokens", "text", "pair"] = "text"
    target = "label"
    output_name = "probabilities"  # (B, C) softmax
    reads = "a TSV/CSV/JSONL file with text and label fields"
    trivial_hint = (
        "hint: the dev accuracy never beat always predicting the most frequent label ({trivial:.4f}). "
        "Check the text and label fields (--set data.text_field=... --set data.label_field=...), try "
        "--set model=tfidf, or train longer (--epochs) or with another --lr"
    )
    empty_prediction: tuple = (None, {})
    pairs: bool | None = None  # read pairs where the file has two texts

    def read(self, cfg, path, tokenize=str.split):
        return read_text_examples(cfg, path, tokenize, label_value, self.pairs)

    def label_set(self, cfg, train):
        labels = sorted(set(train.targets))
        if len(labels) < 2:
            raise PipelineError(f"{train.path}: only one label ({labels[0]!r}); a classifier needs at least two")
        return labels

    def labels_in(self, target):
        return [target]

    def trivial_score(self, dev):
        return max(Counter(dev.targets).values()) / len(dev.targets) if dev.targets else 0.0

    def selection_metric(self, train):
        """Macro-F1 where the commonest training label is at least :data:`IMBALANCED` times as
        frequent as the rarest (accuracy would favour a model that predicts the common label)."""
        counts = Counter(t for s, t in zip(train.sentences, train.targets) if s).values()
        return "macro_f1" if counts and max(counts) >= IMBALANCED * min(counts) else self.metric

    def build_head(self, cfg, input_dim, extra_dim, labels, pairs=False):
        return pooled_head(cfg, input_dim, extra_dim, len(labels), pairs)

    def loss(self, head, inputs, targets, index):
        y = torch.tensor([index[t] for t in targets], device=device_of(inputs))
        return torch.nn.functional.cross_entropy(head(*inputs), y)

    def outputs(self, cfg, head, inputs):
        return torch.softmax(head(*inputs), dim=-1)  # (B, C)

    def decode(self, cfg, head, outputs, batch, labels):
        return [(labels[int(np.argmax(p))], dict(zip(labels, p))) for p in outputs.cpu().tolist()]

    def scores(self, cfg, targets, pred, labels):
        return classification_scores(targets, [p for p, _ in pred], labels)

    def record(self, cfg, tokens, pred):
        return {
            **tokens_record(tokens),
            "label": pred[0],
            "probabilities": {k: round(v, 6) for k, v in pred[1].items()},
        }

    def report(self, scores, where, n, top: int = 20):
        labels, confusion = scores["labels"], scores["confusion"]
        positive = f" F1 of {scores['positive']!r} {scores['positive_f1']:.4f}" if "positive_f1" in scores else ""
        lines = [
            f"{where}: {n} examples; accuracy {scores['accuracy']:.4f} macro-F1 {scores['macro_f1']:.4f}{positive}"
        ]
        if len(labels) <= top:  # a matrix of more labels does not fit a screen (it is in --metrics)
            width = max(len(str(x)) for x in labels + [c for row in confusion for c in row])
            lines.append(
                " " * (width + 3) + " ".join(f"{x:>{width}}" for x in labels) + "   (rows gold, columns predicted)"
            )
            lines += [
                f"  {lab:>{width}} " + " ".join(f"{c:>{width}}" for c in row) for lab, row in zip(labels, confusion)
            ]
        width = min(max(len(str(x)) for x in labels), 30)
        return lines + most_supported(scores["per_label"], top, width, "labels")


class PairTask(ClassifyTask):
    """One label per pair of texts (entailment, paraphrase, duplicate questions): the two text
    fields found by name (:data:`pipeline.tasks.examples.PAIR_NAMES`) or set with ``text_field``
    and ``text_pair_field``."""

    name = "pair"
    title = "sentence-pair classification"
    example = "pair"
    reads = "a TSV/CSV/JSONL file with two text fields and a label field"
    pairs = True


class RegressTask(Task):
    """A number per text or pair of texts (ratings, relatedness, similarity); scored by Pearson's
    r (Spearman's rho and the mean squared error beside it). A prediction is a float."""

    name = "regress"
    title = "regression"
    metric = "pearson"
    example = "text"
    target = "score"
    output_name = "scores"  # (B,) in the training targets' units
    reads = "a TSV/CSV/JSONL file with text (or two text) fields and a number field"
    trivial_hint = (
        "hint: the dev Pearson r never rose above 0. Check the text and score fields "
        "(--set data.text_field=... --set data.label_field=...), try --set model=tfidf, or train longer (--epochs)"
    )

    def read(self, cfg, path, tokenize=str.split):
        return read_text_examples(cfg, path, tokenize, score_value, None)

    def label_set(self, cfg, train):
        if len(set(train.targets)) < 2:
            raise PipelineError(f"{train.path}: every score is {train.targets[0]}; a regression needs at least two")
        return []

    def labels_in(self, target):
        return []

    def trivial_score(self, dev):
        return 0.0  # a constant prediction has no correlation

    def build_head(self, cfg, input_dim, extra_dim, labels, pairs=False):
        return ScoreHead(pooled_head(cfg, input_dim, extra_dim, 1, pairs))

    def init_head(self, head, train):
        head.fit_scale(train.targets)

    def loss(self, head, inputs, targets, index):
        return torch.nn.functional.mse_loss(head(*inputs), head.standardised(targets, device_of(inputs)))

    def outputs(self, cfg, head, inputs):
        return head.scores(*inputs, clip=cfg.head.clip)  # (B,)

    def decode(self, cfg, head, outputs, batch, labels):
        return outputs.cpu().tolist()

    def scores(self, cfg, targets, pred, labels):
        return regression_scores(targets, pred)

    def record(self, cfg, tokens, pred):
        return {**tokens_record(tokens), "score": None if pred is None else round(pred, 6)}

    def report(self, scores, where, n, top: int = 20):
        return [
            f"{where}: {n} examples; Pearson r {scores['pearson']:.4f} Spearman rho {scores['spearman']:.4f} "
            f"MSE {scores['mse']:.4f}"
        ]


class MultilabelTask(Task):
    """0 or more labels per text (emotions, topics): a sigmoid per label, each label's decision
    threshold picked on dev after training; scored by Jaccard accuracy (micro- and macro-F1
    beside it). A prediction is ``(labels, {label: probability})``."""

    name = "multilabel"
    title = "multi-label classification"
    metric = "jaccard"
    example = "text"
    target = "labels"
    output_name = "probabilities"  # (B, K) a sigmoid per label
    reads = "a TSV/CSV/JSONL file with a text field and a label-list field or one 0/1 column per label"
    trivial_hint = (
        "hint: the dev Jaccard accuracy never beat predicting no label ({trivial:.4f}). Check the text "
        "and label fields (--set data.text_field=... --set data.label_field=...), or train longer (--epochs)"
    )
    empty_prediction: tuple = ([], {})

    def read(self, cfg, path, tokenize=str.split):
        return read_multilabel(cfg, path, tokenize)

    def label_set(self, cfg, train):
        labels = sorted({x for t in train.targets for x in t} | set(train.label_names))
        if not labels:
            raise PipelineError(f"{train.path}: no example has a label")
        return labels

    def labels_in(self, target):
        return list(target)

    def trivial_score(self, dev):
        return sum(1 for t in dev.targets if not t) / len(dev.targets) if dev.targets else 0.0

    def build_head(self, cfg, input_dim, extra_dim, labels, pairs=False):
        return LabelSetHead(pooled_head(cfg, input_dim, extra_dim, len(labels), pairs), len(labels))

    def loss(self, head, inputs, targets, index):
        logits = head(*inputs)
        y = torch.zeros_like(logits)
        for b, t in enumerate(targets):
            y[b, [index[x] for x in t]] = 1.0
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)

    def outputs(self, cfg, head, inputs):
        return torch.sigmoid(head(*inputs))  # (B, K)

    def decode(self, cfg, head, outputs, batch, labels):
        probs = outputs.cpu()
        chosen = (probs >= head.thresholds.cpu()).tolist()
        return [([x for x, c in zip(labels, row) if c], dict(zip(labels, p))) for row, p in zip(chosen, probs.tolist())]

    def after_training(self, model, dev):
        import numpy as np

        pred = model.predict(dev.sentences)
        probs = np.array([[p[1].get(x, 0.0) for x in model.labels] for p in pred])
        model.set_thresholds(tune_thresholds(probs, dev.targets, model.labels))
        return True

    def scores(self, cfg, targets, pred, labels):
        return multilabel_scores(targets, [p[0] for p in pred], labels)

    def record(self, cfg, tokens, pred):
        probabilities = {k: round(v, 6) for k, v in pred[1].items()}
        return {**tokens_record(tokens), "labels": pred[0], "probabilities": probabilities}

    def report(self, scores, where, n, top: int = 20):
        lines = [
            f"{where}: {n} examples; Jaccard accuracy {scores['jaccard']:.4f} micro-F1 {scores['micro_f1']:.4f} "
            f"macro-F1 {scores['macro_f1']:.4f}"
        ]
        return lines + most_supported(scores["per_label"], top, 12, "labels")


def pooled_head(cfg: FinetuneConfig, input_dim: int, extra_dim: int, n_out: int, pairs: bool) -> nn.Module:
    """The BiLSTM pooling head of a text (or a pair of texts) with ``n_out`` outputs."""
    head = PairClassifier if pairs else Classifier
    return head(input_dim, n_out, cfg.head.hidden, cfg.head.dropout, cfg.head.pooling, extra_dim=extra_dim)


def score_line(name: str, s: dict, width: int) -> str:
    """One report line of a tag, type or label's precision, recall, F1 and support."""
    return f"  {name:<{width}} P {s['precision']:.4f}  R {s['recall']:.4f}  F1 {s['f1']:.4f}  support {s['support']}"


def by_support(per: dict) -> list[tuple[str, dict]]:
    """(name, scores) of a per-label/tag/type dict, the most frequent in the gold data first."""
    return sorted(per.items(), key=lambda kv: -kv[1]["support"])


def most_supported(per: dict, top: int, width: int, noun: str) -> list[str]:
    """The ``top`` most frequent of ``per`` (name → scores) as report lines, and a line for the rest."""
    ranked = by_support(per)
    lines = [score_line(name, s, width) for name, s in ranked[:top]]
    return lines + ([f"  ... {len(ranked) - top} rarer {noun} (all in --metrics)"] if len(ranked) > top else [])


def tokens_record(tokens) -> dict:
    """The tokens of a prediction record: ``tokens``, and ``tokens_pair`` for a pair."""
    if isinstance(tokens, tuple):
        return {"tokens": tokens[0], "tokens_pair": tokens[1]}
    return {"tokens": tokens}


def device_of(inputs: tuple) -> torch.device:
    """The device of a head's inputs: (x, mask, extra), or one such triple per side of a pair."""
    first = inputs[0]
    return first[0].device if isinstance(first, tuple) else first.device


TASKS: dict[str, Task] = {
    "ner": NerTask(),
    "tag": TagTask(),
    "classify": ClassifyTask(),
    "pair": PairTask(),
    "regress": RegressTask(),
    "multilabel": MultilabelTask(),
}
assert list(TASKS) == list(typing.get_args(TaskName)), "config.TaskName names the tasks of TASKS"


def task_named(name: str) -> Task:
    """The task type of ``FinetuneConfig.task`` (the config loader has checked the name)."""
    try:
        return TASKS[name]
    except KeyError:
        raise PipelineError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None
