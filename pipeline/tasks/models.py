"""The model types of finetuning, as a registry: the one place a model name is looked up.

Each :class:`ModelType` says which tasks it learns, what it needs (the encoder, the configured
inputs), how it trains, how its saved directory loads. How it trains is one of three:

- ``fit(job)``: fits in one go, saves, returns the result (TF-IDF, linear, majority);
- ``build(job, splits)``: a neural model (an ``nn.Module`` with ``loss``) that the epoch loop of
  :mod:`pipeline.train.finetune` trains (the BiLSTM);
- ``combine(cfg, members)``: made from the other candidates of ``model: auto`` (the ensemble).

``model: auto`` is no model type: it trains every type that learns the task (:func:`candidates`,
cheapest first) and keeps the best on dev by the task's selection metric; a candidate trained by
epochs gets ``training.auto_budget`` times the time of the ``sets_budget`` ones before it.

A new model type = its own module (a :class:`~pipeline.tasks.base.TaskModel`) + one entry in
:data:`MODEL_TYPES` (and its name in ``config.ModelName``).

    load_task_model("models/sentiment").predict(["a fine film"])
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pipeline.config import FinetuneConfig, ModelName
from pipeline.encoder import ONNX_FILE, ONNX_REPORT
from pipeline.errors import PipelineError
from pipeline.tasks.base import TaskModel, read_saved
from pipeline.tasks.bilstm import BILSTM_FILES, BiLSTMTaskModel
from pipeline.tasks.ensemble import MEMBERS_DIR, EnsembleClassifier
from pipeline.tasks.kinds import Task, task_named
from pipeline.tasks.linear import VOCAB_FILE, LinearModel, fit_linear
from pipeline.tasks.majority import TABLE_FILE, MajorityTagger, fit_majority

Loader = Callable[[Path, dict, FinetuneConfig, list[str]], TaskModel]


@dataclass(frozen=True)
class ModelType:
    name: ModelName
    summary: str  # one line: --help, the configuration reference
    learns: Callable[[Task], bool]  # the tasks it learns
    load: Loader
    fit: Callable | None = None  # fit(job) -> result, the model directory saved
    build: Callable | None = None  # build(job, splits) -> a neural TaskModel for the epoch loop
    combine: Callable | None = None  # combine(cfg, {name: trained model}) -> a model of the others
    needs_encoder: bool = False  # it reads the biLM's layers whatever `inputs` says
    uses_inputs: bool = False  # it reads the configured inputs (encoder and/or word2vec)
    files: tuple[str, ...] = ()  # the side files its directory must hold (checked before loading)
    # under `model: auto`, its time sets the budget of the candidates trained by epochs
    # (training.auto_budget × the time of such candidates): the quick models a user tries first
    sets_budget: bool = False

    @property
    def trains_by_epochs(self) -> bool:
        return self.build is not None

    @property
    def combines(self) -> bool:
        return self.combine is not None


def _texts(task: Task) -> bool:
    """Texts or pairs of texts, with a label, labels or a score."""
    return task.example in ("text", "pair") and task.target in ("label", "labels", "score")


def _labelled_texts(task: Task) -> bool:
    return task.example in ("text", "pair") and task.target == "label"


def _load_ensemble(d: Path, config: dict, cfg: FinetuneConfig, labels: list[str]) -> TaskModel:
    return EnsembleClassifier.load(d, config, cfg, load_member=load_task_model)


# cheapest first: `model: auto` trains them in this order, and a tie on dev keeps the cheaper
MODEL_TYPES: dict[str, ModelType] = {
    m.name: m
    for m in (
        ModelType(
            "majority",
            "each word's most frequent training tag (tag)",
            learns=lambda t: t.name == "tag",
            load=MajorityTagger.load,
            fit=fit_majority,
            files=(TABLE_FILE,),
        ),
        ModelType(
            "tfidf",
            "TF-IDF word and character n-grams + logistic regression (one per label for multilabel, ridge "
            "for regress), C picked on dev (classify, pair, regress, multilabel)",
            learns=_texts,
            load=LinearModel.load,
            fit=partial(fit_linear, with_elmo=False),
            files=(VOCAB_FILE,),
            sets_budget=True,
        ),
        ModelType(
            "linear",
            "TF-IDF + the frozen biLM's layers pooled, logistic or ridge regression (classify, pair, regress, "
            "multilabel)",
            learns=_texts,
            load=LinearModel.load,
            fit=partial(fit_linear, with_elmo=True),
            needs_encoder=True,
            files=(VOCAB_FILE,),
            sets_budget=True,
        ),
        ModelType(
            "bilstm",
            "BiLSTM on [word ; casing ; chars ; ELMo mix]: a CRF tagger (ner, tag), a pooling classifier or "
            "regressor (classify, regress), both texts pooled and matched (pair)",
            learns=lambda t: True,
            load=BiLSTMTaskModel.load,
            build=BiLSTMTaskModel.for_job,
            uses_inputs=True,
        ),
        ModelType(
            "ensemble",
            "the mean probabilities of the other candidates (classify, pair)",
            learns=_labelled_texts,
            load=_load_ensemble,
            combine=EnsembleClassifier,
            files=(MEMBERS_DIR,),
        ),
    )
}
assert ["auto", *MODEL_TYPES] == list(typing.get_args(ModelName)), "config.ModelName names MODEL_TYPES"
MODEL_CHOICES = ["auto", *MODEL_TYPES]  # what `model:` and `--model` take
# every name a task-model directory may hold (a re-run replaces the directory whole, so any other
# file in it, a user's notes or a .git, makes the re-run refuse instead of deleting it)
TASK_MODEL_FILES = {"config.json", "model.safetensors", "README.md", ONNX_FILE, ONNX_REPORT, *BILSTM_FILES}
TASK_MODEL_FILES |= {f for m in MODEL_TYPES.values() for f in m.files}


def model_type(name: str) -> ModelType:
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise PipelineError(f"unknown model type {name!r} (known: {', '.join(MODEL_TYPES)})") from None


def candidates(cfg: FinetuneConfig) -> list[ModelType]:
    """The model types ``model: auto`` trains for ``cfg``: those that learn its task and can use its
    inputs (no encoder-only model with ``inputs: word2vec``), cheapest first; an ensemble only
    over at least two others."""
    task = task_named(cfg.task)
    usable = [
        m for m in MODEL_TYPES.values() if m.learns(task) and not (m.needs_encoder and cfg.inputs.use == "word2vec")
    ]
    singles = [m for m in usable if not m.combines]
    return singles + ([m for m in usable if m.combines] if len(singles) > 1 else [])


def chosen(cfg: FinetuneConfig) -> list[ModelType]:
    """What ``cfg.model`` trains: the candidates for ``auto``, else the one model type."""
    return candidates(cfg) if cfg.model == "auto" else [model_type(cfg.model)]


def models_for(task: Task) -> list[str]:
    return ["auto", *(m.name for m in MODEL_TYPES.values() if m.learns(task))]


def tasks_of(name: str) -> list[str]:
    """The tasks model ``name`` learns (every task for ``auto``)."""
    from pipeline.tasks.kinds import TASKS

    return [t for t, task in TASKS.items() if name == "auto" or MODEL_TYPES[name].learns(task)]


def check_model(cfg: FinetuneConfig, where: str = "command line", section: str = "finetune") -> None:
    """``cfg.model`` learns ``cfg.task`` and has what it needs (one line naming the key if not)."""
    task = task_named(cfg.task)
    kinds = chosen(cfg)
    if cfg.model != "auto":
        m = kinds[0]
        if not m.learns(task):
            raise PipelineError(
                f"{where}: {section}.model: {m.name} does not learn task {task.name} "
                f"(models for {task.name}: {', '.join(models_for(task))}; "
                f"{m.name} learns {', '.join(tasks_of(m.name))})"
            )
        if m.needs_encoder and (cfg.inputs.use == "word2vec" or not cfg.inputs.encoder):
            raise PipelineError(
                f"{where}: {section}.model: {m.name} pools the biLM's layers: it needs an encoder "
                f"(inputs 'both' or 'elmo')"
            )
        if m.combines:
            kinds = candidates(cfg)
    if any(m.uses_inputs or m.needs_encoder for m in kinds):
        cfg.validate_inputs(where, section)


def load_task_model(directory: str | Path, runtime: str = "auto") -> TaskModel:
    """The task model saved in ``directory`` (by ``elmo finetune`` or ``TaskModel.save``).
    ``runtime``: "auto" runs an ONNX export (``elmo export --format onnx``) in ONNX Runtime and
    anything else in PyTorch; "torch" always PyTorch."""
    d = Path(directory)
    config, cfg, labels = read_saved(d)
    # a tagger that `model: auto` trained alone was saved as "auto" before the registry said "bilstm"
    kind = model_type("bilstm" if cfg.model == "auto" else cfg.model)
    for key in ("task", "model"):  # the directory's own record and its finetune settings must agree
        if config.get(key, getattr(cfg, key)) != getattr(cfg, key):
            raise PipelineError(
                f"{d / 'config.json'}: {key} {config[key]!r} disagrees with its finetune settings' "
                f"{getattr(cfg, key)!r}: the directory was edited or mixed; re-train or re-copy it"
            )
    missing = [f for f in kind.files if not (d / f).exists()]
    if missing:
        raise PipelineError(
            f"{d}: a {kind.name} model needs {', '.join(missing)}, which is missing: an incomplete copy?"
        )
    model = kind.load(d, config, cfg, labels)
    if runtime == "auto" and (d / ONNX_FILE).is_file():
        from pipeline.tasks.onnx import OnnxTaskModel

        if not isinstance(model, BiLSTMTaskModel):
            raise PipelineError(f"{d / ONNX_FILE}: a {kind.name} model has no ONNX graph: the directory was mixed")
        return OnnxTaskModel(model, d / ONNX_FILE)
    return model
