"""One finetuning job: its settings and outputs (:class:`FinetuneJob`), the inputs it loads
(encoder, word2vec) and its labelled files read and checked (:class:`TaskSplits`).

Every model type fits from a job (``ModelType.fit(job)`` in :mod:`pipeline.tasks.models`, the
epoch loop of :mod:`pipeline.train.finetune` for the neural ones), so the settings travel as one
object instead of a list of arguments.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.tasks.examples import (
    TaskData,
    check_labels,
    check_labels_look_like_labels,
    check_same_shape,
    sides,
    tokenizer_for,
)
from pipeline.tasks.kinds import task_named


@dataclass(frozen=True)
class FinetuneJob:
    """What one run of finetuning is asked to do.

    ``inputs``: an already loaded ``(encoder, word2vec)`` pair (reused across seeds and candidates;
    None: loaded as ``cfg.inputs.use`` asks); ``layer_cache``: frozen-biLM layers per sentence, shared
    by every model of the run that uses that encoder."""

    cfg: FinetuneConfig
    out_dir: Path
    plots_dir: Path | None = None
    progress: bool = True
    inputs: tuple | None = None
    log: Callable[[str], None] = print
    layer_cache: dict | None = None

    def replace(self, **changes) -> FinetuneJob:
        return dataclasses.replace(self, **changes)

    def say(self, message: str) -> None:
        """A progress line (silent without ``progress``); notes and errors go to ``log`` always."""
        if self.progress:
            self.log(message)

    def with_inputs(self) -> FinetuneJob:
        """This job with its encoder and word2vec vectors loaded (once)."""
        return self if self.inputs is not None else self.replace(inputs=load_inputs(self.cfg))

    @property
    def encoder(self):
        """The loaded encoder when the inputs use ELMo, else None."""
        if self.inputs is None or self.cfg.inputs.use == "word2vec":
            return None
        return self.inputs[0]

    def read_splits(self, uses_encoder: bool = True) -> TaskSplits:
        """The labelled files, raw text split as this job's model will split it."""
        return read_splits(self.cfg, tokenizer_for(self.encoder if uses_encoder else None), self.log)


def load_inputs(cfg: FinetuneConfig):
    """(encoder, word2vec lookup) as ``cfg.inputs.use`` asks; unused ones are not loaded."""
    encoder = word2vec = None
    if cfg.inputs.use in ("both", "elmo"):
        from pipeline.encoder import Encoder

        encoder = Encoder.from_pretrained(cfg.inputs.encoder or "")  # validate() requires it for these inputs
    if cfg.inputs.use in ("both", "word2vec"):
        from pipeline.word2vec import load_word2vec_lookup

        word2vec = load_word2vec_lookup(cfg.inputs.word2vec or "", cfg.training.seed)  # validate() requires it
    return encoder, word2vec


@dataclass
class TaskSplits:
    """The labelled data of one run, read and checked."""

    train: TaskData
    dev: TaskData
    test: TaskData | None
    labels: list[str]
    train_idx: list[int]  # training examples with at least one token

    def counts(self) -> dict:
        parts = [d for d in (self.train, self.dev, self.test) if d is not None]
        return {
            "train": len(self.train_idx),
            "dev": len(self.dev.sentences),
            "test": len(self.test.sentences) if self.test else 0,
            "labels": len(self.labels),
            "repaired_tags": sum(d.repaired for d in parts),
            "skipped_empty": sum(d.skipped_empty for d in parts),
            "replaced_lines": sum(d.replaced_lines for d in parts),
            "controls_as_space": sum(d.controls_as_space for d in parts),
            "glued_punctuation": sum(d.glued_punctuation for d in parts),
        }

    def notes(self) -> list[str]:
        """One-line notes on how the files were read (control characters, glued punctuation)."""
        from pipeline.data.tokenizers import glued_warning

        out = []
        for d in (self.train, self.dev, self.test):
            if d is not None and d.controls_as_space:
                out.append(f"note: {d.path}: {d.controls_as_space} lines had control characters, read as spaces")
        warning = glued_warning(self.train.path, self.train.glued_punctuation, self.train.tokens)
        return out + ([warning] if warning else []) + self.score_like_labels()

    def score_like_labels(self) -> list[str]:
        """A warning when every label of a classifier is a number and some have decimals (scores,
        each read as a class)."""

        def number(label) -> bool:
            try:
                float(label)
                return True
            except (TypeError, ValueError):
                return False

        targets = self.train.targets
        if not targets or not isinstance(targets[0], str) or not all(number(t) for t in targets):
            return []
        if not any("." in t for t in targets):
            return []
        return [
            f"warning: {self.train.path}: the {len(self.labels)} labels are numbers with decimals, each "
            f"learned as a class; for scores use --task regress"
        ]

    @property
    def pairs(self) -> bool:
        return self.train.pairs

    def all_sentences(self) -> list[list[str]]:
        """Every text of every split (both texts of a pair)."""
        examples = self.train.sentences + self.dev.sentences + (self.test.sentences if self.test else [])
        return [s for e in examples for s in sides(e)]


def read_splits(cfg: FinetuneConfig, tokenize, log=print) -> TaskSplits:
    """Read train/dev(/test); the label set comes from train, and dev/test may use only those labels."""
    task = task_named(cfg.task)
    train = task.read(cfg, cfg.data.train, tokenize)
    train_idx = [i for i, s in enumerate(train.sentences) if s]
    if not train_idx:  # before reading dev, so the error names the file that is wrong
        raise PipelineError(f"{cfg.data.train}: no labelled examples")
    dev = task.read(cfg, cfg.data.dev, tokenize)
    test = task.read(cfg, cfg.data.test, tokenize) if cfg.data.test else None
    if not dev.sentences:
        raise PipelineError(f"{cfg.data.dev}: no labelled examples")
    for d in (dev, test):
        if d is not None:
            check_same_shape(d, train.pairs, f"{train.path} holds")
    labels = task.label_set(cfg, train)
    check_labels_look_like_labels(train, labels)
    notes = [check_labels(d, labels, task.labels_in, task.unseen_labels_ok) for d in (dev, test) if d is not None]
    splits = TaskSplits(train, dev, test, labels, train_idx)
    for note in [n for n in notes if n] + splits.notes():
        log(note)
    return splits


def fitted_result(job: FinetuneJob, model, splits: TaskSplits, start: float, history=(), best_epoch: int = 1, **fields):
    """The result of a model type that fits in one go (each ``history`` row an "epoch", e.g. one
    regularisation strength), with its dev and test scores; its directory is saved with them."""
    from pipeline.tasks.metrics import scores_on_test

    cfg = job.cfg
    dev = model.scores(splits.dev)
    result = {
        "task": cfg.task,
        "model": cfg.model,
        "seed": cfg.training.seed,
        "labels": model.labels,
        "data": splits.counts(),
        "epochs_run": max(len(history), 1),
        "best_epoch": best_epoch,
        **fields,
        "dev": dev,
        "history": list(history),
    }
    result.update(scores_on_test(model, splits.test))
    result["seconds"] = round(time.time() - start, 1)
    model.save(job.out_dir, {"dev_scores": dev, "test_scores": result.get("test"), "epoch": best_epoch})
    return result
