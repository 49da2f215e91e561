"""What every finetuned task model is (:class:`TaskModel`) and how it is saved: the one module the
model types (BiLSTM, TF-IDF/linear, ensemble, majority) and their registry (:mod:`pipeline.tasks.models`) share.

Model directory (any model type; no pickle anywhere)::

    config.json          kind "task-model", format version, task, model, label set, the finetune
                         config, dev/test scores, and the model type's own fields
    model.safetensors    the model type's weights
    README.md            a model card
    ...                  the model type's side files (encoder/, words.txt, tfidf_vocab.json, members/)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from pipeline.config import FinetuneConfig, check_section, nest_flat_finetune, with_values
from pipeline.errors import PipelineError
from pipeline.io import CONFIG_FILE, check_not_special, read_model_config, run_record, write_model_dir
from pipeline.tasks.examples import TaskData
from pipeline.tasks.kinds import Task, by_support, task_named

TASK_MODEL_KIND = "task-model"
# 3: one format for every model type ("model" recorded); 4: the finetune config in sections
# (data, inputs, head, training). Format 3 directories load: their flat keys are put in sections.
TASK_MODEL_FORMAT = 4
LOAD_HINT = "; a task model comes from `elmo finetune` (an encoder goes to --encoder)"


class TaskModel:
    """A trained model of one task: ``predict`` raw text or token lists, ``scores`` on labelled
    data, ``records`` for JSON output, ``save`` to a directory that
    :func:`pipeline.tasks.models.load_task_model` reads back.

    A model type sets ``cfg`` (its finetune config), ``labels`` (the ordered label set), ``tokenize``
    (how raw text is split) and ``config`` (its saved ``config.json``, empty until saved or loaded),
    and implements ``predict`` and ``save``."""

    cfg: FinetuneConfig
    labels: list[str]
    tokenize: Callable[[str], list[str]]
    config: dict

    @property
    def task(self) -> Task:
        return task_named(self.cfg.task)

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        """A prediction per sentence (a token list or raw text); see the task's ``decode``."""
        raise NotImplementedError

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        """Write the model directory atomically; ``extra``: more config.json fields (scores, epoch)."""
        raise NotImplementedError

    def describe(self) -> str:
        """What this model is and what it reads, in words (its model card)."""
        raise NotImplementedError

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` (``tuple(tokens) → layers``); a model without
        an encoder has none."""

    def scores(self, data: TaskData, pred: list | None = None) -> dict:
        """The task's scores on ``data``; ``pred``: this model's predictions for it if already made."""
        pred = self.predict(data.sentences) if pred is None else pred
        return self.task.scores(self.cfg, data.targets, pred, self.labels)

    def dev_metric(self, scores: dict) -> float:
        return scores[self.task.metric]

    pairs: bool = False  # its examples are pairs of texts
    runtime = "pytorch"  # what runs it ("onnxruntime": an ONNX export)

    def records(self, sentences: list) -> list[dict]:
        """JSON-able prediction records (ner: tokens, tags, entities as token spans, end exclusive;
        tag: tokens, tags; classify, pair: tokens (and tokens_pair), label and probabilities;
        regress: tokens (and tokens_pair), score)."""
        return [self.task.record(self.cfg, toks, p) for toks, p in zip(sentences, self.predict(sentences))]

    def predict_file(
        self, input_path, out: TextIO, encoding_errors: str = "error", stats=None, chunk: int = 1000
    ) -> int:
        """Predict every line of a text file, writing one JSON object per line to ``out`` as it goes
        (``chunk`` lines at a time: memory stays flat for any file size). Returns the number of lines."""
        from pipeline.data.lines import input_chunks
        from pipeline.tasks.examples import line_example

        n = 0
        for part in input_chunks(input_path, chunk, encoding_errors, stats):
            where = f"{input_path}:" if str(input_path) != "-" else "standard input:"
            records = self.records([line_example(t, self.tokenize, self.pairs, f"{where}{i + 1}") for i, t in part])
            out.write(
                "".join(json.dumps({"line": i + 1, **r}, ensure_ascii=False) + "\n" for (i, _), r in zip(part, records))
            )
            n += len(part)
        return n

    # --- the saved format ----------------------------------------------------------------------

    def saved_config(self, fields: dict, extra: dict | None) -> dict:
        """config.json of this model: the common fields, the model type's ``fields``, then ``extra``."""
        return {
            "format_version": TASK_MODEL_FORMAT,
            "task": self.cfg.task,
            "model": self.cfg.model,
            "labels": self.labels,
            "finetune": dataclasses.asdict(self.cfg),
            **run_record(),
            **fields,
            **(extra or {}),
        }

    def write_dir(self, directory, config: dict, tensors: dict, side_files: Callable[[Path], None]) -> None:
        """The model directory with ``config``, ``tensors``, the model card and ``side_files(tmp)``."""

        def all_side_files(tmp: Path) -> None:
            side_files(tmp)
            (tmp / "README.md").write_text(task_model_card(config, self.describe()), encoding="utf-8")

        write_model_dir(directory, TASK_MODEL_KIND, config, tensors, all_side_files)


def read_saved(directory: str | Path) -> tuple[dict, FinetuneConfig, list[str]]:
    """(config.json, its finetune config, the labels) of a task-model directory."""
    d = Path(directory)
    config = read_model_config(d, TASK_MODEL_KIND, TASK_MODEL_FORMAT, hint=LOAD_HINT)
    cfg_file = d / CONFIG_FILE
    for entry in d.iterdir():  # a pipe among the side files would block its reader
        check_not_special(entry, "a file of the task model")
    try:
        saved = dict(config["finetune"])
        if config["format_version"] < 4:
            saved = nest_flat_finetune(saved)
        cfg = with_values(FinetuneConfig(), check_section(FinetuneConfig, saved, f"{cfg_file}: finetune"))
        labels = config["labels"]
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{cfg_file}: missing or bad field ({e})") from None
    cfg.validate(str(cfg_file), "finetune")
    if (
        not isinstance(labels, list)
        or not all(isinstance(x, str) and x.isprintable() for x in labels)  # no control characters or surrogates
        or len(set(labels)) < len(labels)
    ):
        raise PipelineError(f"{cfg_file}: labels: expected a list of distinct strings, got {str(labels)[:80]}")
    if not labels and task_named(cfg.task).target != "score":
        raise PipelineError(f"{cfg_file}: labels: empty, but a {cfg.task} model predicts labels")
    return config, cfg, labels


STOPS = {
    "patience": "early stopping (patience epochs without a better dev score)",
    "max_minutes": "the time budget (max_minutes)",
    "epochs": "the epoch budget (epochs)",
}


def per_label_lines(config: dict, top: int = 20) -> list[str]:
    """The card's line of per-label precision/recall/F1 (support) of a classifier, most frequent first."""
    split = "test" if config.get("test_scores") else "dev"
    per = (config.get(f"{split}_scores") or {}).get("per_label")
    if not per:
        return []
    ranked = by_support(per)
    shown = "; ".join(
        f"{k} {v['precision']:.2f}/{v['recall']:.2f}/{v['f1']:.2f} ({v['support']})" for k, v in ranked[:top]
    )
    more = f"; {len(ranked) - top} more in config.json" if len(ranked) > top else ""
    return [f"- {split} per label, precision/recall/F1 (support): {shown}{more}"]


def task_model_card(config: dict, described: str) -> str:
    """README.md of a task-model directory: what it is (``described``: the model type's words for
    its inputs), how good, how it was made, its limits."""
    f = config["finetune"]["data"]
    task = task_named(config["task"])
    metric = task.metric
    lines = [
        f"# {task.title} model (elmo-pipeline)",
        "",
        f"- task: {config['task']}; model: {described}",
        f"- labels ({len(config['labels'])}): {', '.join(config['labels'])}",
        f"- trained on: {f['train']} (dev {f['dev']}{'; test ' + f['test'] if f.get('test') else ''})",
    ]
    for split in ("dev", "test"):
        s = config.get(f"{split}_scores")
        if s:
            lines.append(f"- {split} {metric}: {s[metric]:.4f}")
    lines += per_label_lines(config)
    if config.get("candidates"):
        how = (
            "kept by `model: auto`, the best dev"
            if config.get("selected_by", "auto") == "auto"
            else f"`model: {config['selected_by']}`; dev"
        )
        on = config.get("selected_on", metric)
        key = "dev" if on == metric else f"dev_{on}"
        scores = ", ".join(f"{name} {c[key]:.4f}" for name, c in config["candidates"].items())
        lines.append(f"- {how} {on} among: {scores}")
    if config.get("stopped_by"):
        lines.append(f"- training stopped by: {STOPS.get(config['stopped_by'], config['stopped_by'])}")
    if config.get("date"):
        lines.append(f"- made: {config['date']} by `{config.get('command', '?')}`")
    lines += [
        "",
        "## Use",
        "",
        "`elmo predict --model THIS_DIR input.txt` "
        + ("(two texts per line, separated by a tab), " if config.get("pairs") else "(one text per line), ")
        + "`elmo evaluate --model THIS_DIR labelled_file`, or in Python "
        + (
            '`pipeline.load_task_model(THIS_DIR).predict([("a text", "another")])`.'
            if config.get("pairs")
            else '`pipeline.load_task_model(THIS_DIR).predict(["a sentence"])`.'
        ),
        "",
        "## Intended use and limitations",
        "",
        "It predicts only the labels above, for text like its training file (language, domain,",
        "tokenization). The scores above hold for the dev and test files named; on other text expect",
        "lower ones and measure with `elmo evaluate` on a labelled sample of yours. It learns the",
        "patterns and biases of its training data; do not use it alone for decisions about people.",
        "",
        "## Licence",
        "",
        "The model follows the licences of its training data and encoder; elmo-pipeline, which made",
        "it, is MIT.",
        "",
    ]
    return "\n".join(lines)
