"""Finetuning a downstream task (NER tagger or sentence classifier) on accelerate.

    read train/dev(/test) ─▶ label set from train (dev/test labels must be known)
        ─▶ TaskModel(features [word ; casing ; chars ; ELMo mix], head) on accelerator.device
        ─▶ epochs of shuffled batches (Adam; the biLM in its own group at encoder_lr if finetuned)
            after each epoch: dev score → plots/{train,dev}.tsv, best weights so far kept in memory,
            with checkpoint_dir: the resumable state (also on SIGTERM/SIGHUP, then stop)
        ─▶ early stopping after `patience` epochs without improvement, best weights restored
        ─▶ test scores, the model directory written (atomically) with its scores: only a run that
           ends well replaces out_dir; a failed or interrupted one leaves it as it was

One process (one device): the tasks are small next to pretraining. Same config + seed → same model
on the same machine.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.config import FinetuneConfig, with_values
from pipeline.data.batching import cut_sorted
from pipeline.errors import DeferredTermination, PipelineError
from pipeline.io import PlotTable, check_plots_dir, check_replaceable, check_run_paths, directory_kind, output_lock
from pipeline.plots import PNG_FILES, draw_pictures
from pipeline.progress import progress_bar
from pipeline.tasks.base import TASK_MODEL_KIND, TaskModel
from pipeline.tasks.bilstm import BiLSTMTaskModel
from pipeline.tasks.examples import example_length
from pipeline.tasks.job import FinetuneJob, TaskSplits
from pipeline.tasks.kinds import IMBALANCED, task_named
from pipeline.tasks.metrics import scores_on_test
from pipeline.tasks.models import TASK_MODEL_FILES, candidates, check_model, chosen, load_task_model, model_type
from pipeline.train.checkpoint import (
    DAMAGED,
    FINETUNE_KIND,
    load_finetune_checkpoint,
    save_finetune_checkpoint,
    settings_fingerprint,
)

# all that finetuning writes to a plots directory
PLOT_FILES = ("train.tsv", "dev.tsv", "confusion.json", *PNG_FILES)


def shuffled_batches(
    indices: list[int], lengths: list[int], size: int, rng: random.Random, pool: int = 20
) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort each run of ``pool`` batches' worth by
    length, cut, shuffle the batches (less padding for the task LSTM and the CRF's time loop)."""
    order = list(indices)
    rng.shuffle(order)
    batches = []
    for k in range(0, len(order), size * pool):
        chunk = sorted(order[k : k + size * pool], key=lambda i: lengths[i])
        batches += cut_sorted(chunk, lengths, max_rows=size)
    rng.shuffle(batches)
    return batches


def task_optimizer(model: BiLSTMTaskModel, cfg: FinetuneConfig) -> torch.optim.Optimizer:
    """Adam (PyTorch's fused kernel: ~9x faster steps on CPU than its per-tensor loop, the same
    update up to rounding), the biLM (when finetuned) in its own group at ``encoder_lr``."""
    bilm = [p for n, p in model.named_parameters() if n.startswith("features.bilm.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("features.bilm.") and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.training.lr}] + (
        [{"params": bilm, "lr": cfg.training.encoder_lr}] if bilm else []
    )
    return torch.optim.Adam(groups, fused=True)


@dataclass
class BestSoFar:
    """Early-stopping bookkeeping: the best dev score, its epoch, scores and weights. Patience
    counts only once the best score beats ``trivial`` or after ``min_epochs``: a model still at
    chance level is given time to start learning (small data sets need more steps)."""

    trivial: float = 0.0
    min_epochs: int = 0
    score: float = -1.0
    epoch: int = 0
    dev: dict | None = None
    state: dict | None = None
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    stopped_by: str = "epochs"  # what ended training: epochs, patience or max_minutes

    def update(self, score: float, dev_scores: dict, epoch: int, net: BiLSTMTaskModel) -> bool:
        if score > self.score:
            self.score, self.dev, self.epoch, self.bad_epochs = score, dev_scores, epoch, 0
            self.state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return True
        if self.score > self.trivial or epoch > self.min_epochs:
            self.bad_epochs += 1
        return False


def finetune(
    cfg: FinetuneConfig,
    out_dir: str | Path,
    plots_dir: str | Path | None = None,
    progress: bool = True,
    inputs=None,
    log=print,
    layer_cache: dict | None = None,
) -> dict:
    """Train, keep the best dev model in ``out_dir``, return metrics (dev, test, history, data counts).

    ``inputs``: an already loaded (encoder, word2vec) pair to reuse (e.g. across seeds);
    ``layer_cache``: a dict of frozen-biLM layers per sentence shared across runs with that encoder."""
    check_model(cfg)
    check_run_paths(
        {"--out": out_dir, "--plots": plots_dir, "checkpoint_dir": cfg.training.checkpoint_dir},
        {f"data.{k}": getattr(cfg.data, k) for k in ("train", "dev", "test")}
        | {f"inputs.{k}": getattr(cfg.inputs, k) for k in ("encoder", "word2vec")},
    )
    check_replaceable(out_dir, TASK_MODEL_KIND, TASK_MODEL_FILES)  # a bad --out fails now, not after an epoch
    if plots_dir:
        check_plots_dir(plots_dir, PLOT_FILES)
    job = FinetuneJob(cfg, Path(out_dir), Path(plots_dir) if plots_dir else None, progress, inputs, log, layer_cache)
    with output_lock(out_dir):  # one run per output directory
        result = train_task_model(job)
    if plots_dir:
        write_plots(result, plots_dir)
    return result


def train_task_model(job: FinetuneJob) -> dict:
    """:func:`finetune` once its outputs are checked and locked: the model type of ``job.cfg``
    fits itself, is trained by epochs, or (auto, ensemble) is picked among the candidates."""
    cfg = job.cfg
    kinds = chosen(cfg)
    if len(kinds) > 1 or kinds[0].combines:
        return train_auto(job)
    kind = kinds[0]
    job = job.replace(cfg=dataclasses.replace(cfg, model=kind.name))  # auto with one candidate names it
    if kind.uses_inputs or kind.needs_encoder:
        job = job.with_inputs()
    return kind.fit(job) if kind.fit is not None else train_by_epochs(job, kind)


def train_by_epochs(job: FinetuneJob, kind) -> dict:
    """A neural model type (``kind.build``) trained by :class:`FinetuneRun` on accelerate."""
    from accelerate import Accelerator

    start = time.time()
    cfg = job.cfg
    if cfg.training.finetune_encoder and job.inputs is not None and job.inputs[0] is not None:
        job = job.replace(inputs=(copy.deepcopy(job.inputs[0]), job.inputs[1]))  # the caller's stays as it was
    splits = job.read_splits()
    random.seed(cfg.training.seed)
    torch.manual_seed(cfg.training.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model = kind.build(job, splits)
    if not cfg.training.finetune_encoder and model.features.encoder is not None:
        if job.layer_cache is not None:
            model.features.share_layers(job.layer_cache)
        model.features.precompute(splits.all_sentences(), progress=job.progress)
    model, optimizer = accelerator.prepare(model, task_optimizer(model, cfg))
    net = accelerator.unwrap_model(model)
    return FinetuneRun(net, optimizer, accelerator, splits, job).run(start)


def _once(log, said: set):
    """``log`` that says each note/warning line once."""

    def say(message: str) -> None:
        if message.startswith(("note:", "warning:")):
            if message in said:
                return
            said.add(message)
        log(message)

    return say


def train_auto(job: FinetuneJob) -> dict:
    """``model: auto``: every candidate that learns the task trained (the ones trained by epochs
    within their budget, :func:`epoch_budget`), and their ensemble where there is one; the best on
    the dev selection metric (:meth:`Task.selection_metric`) kept in ``out_dir`` (by construction
    never below the cheapest candidate on dev). ``model: ensemble`` keeps the ensemble. The
    candidates train in a temporary directory beside ``out_dir``; the metrics hold every
    candidate's scores (the task's primary metric; the others as ``dev_<name>``)."""
    start = time.time()
    cfg = job.cfg
    # each candidate reads the files: their notes are said once; the biLM layers are computed once
    job = job.replace(log=_once(job.log, set()), layer_cache={} if job.layer_cache is None else job.layer_cache)
    job = job.with_inputs()
    metric = selection_metric(job)
    parent = job.out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{job.out_dir.name}.auto-", dir=parent))
    try:
        results, models, skipped = _train_candidates(job, tmp)
        order = [m.name for m in candidates(cfg) if m.name in results]
        keep = (
            max(order, key=lambda n: (results[n]["dev"][metric], -order.index(n))) if cfg.model == "auto" else cfg.model
        )
        table = {n: candidate_summary(results[n], task_named(cfg.task).metric) for n in order}
        picked = {"selected_by": cfg.model, "selected_on": metric, "candidates": table}
        picked |= {"skipped": skipped} if skipped else {}
        result = {**results[keep], "model": keep, **picked}
        models[keep].save(
            job.out_dir,
            {
                "dev_scores": result["dev"],
                "test_scores": result.get("test"),
                "epoch": result["best_epoch"],
                "stopped_by": result.get("stopped_by"),
                **picked,
            },
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    dev = ", ".join(f"{n} {results[n]['dev'][metric]:.4f}" for n in order)
    job.say(f"auto: dev {metric} {dev}; kept {keep}")
    result["seconds"] = round(time.time() - start, 1)
    return result


def selection_metric(job: FinetuneJob) -> str:
    """The dev score ``model: auto`` picks by for this job's training data (said when it is not the
    task's primary metric)."""
    task = task_named(job.cfg.task)
    metric = task.selection_metric(task.read(job.cfg, job.cfg.data.train))  # labels only: any tokenizer
    if metric != task.metric:
        job.log(
            f"note: the training labels are imbalanced (the commonest at least {IMBALANCED}x the rarest): "
            f"candidates are picked by dev {metric}, not {task.metric}"
        )
    return metric


def candidate_summary(result: dict, metric: str) -> dict:
    """A candidate's line in the metrics: its primary dev (and test) score, the other dev scores."""
    dev = result["dev"]
    others = {f"dev_{k}": v for k, v in dev.items() if k != metric and isinstance(v, float)}
    test = {"test": result["test"][metric]} if "test" in result else {}
    trained = {k: result[k] for k in ("epochs_run", "stopped_by") if result.get("stopped_by")}  # by epochs
    return {"dev": dev[metric], **others, **test, **trained, "seconds": result["seconds"]}


def auto_plan(cfg: FinetuneConfig) -> str:
    """The line ``model: auto`` says before it trains: its candidates, the slow one, the budget."""
    kinds = candidates(cfg)
    slow = " and ".join(m.name for m in kinds if m.trains_by_epochs)
    quick = ", ".join(m.name for m in kinds if m.sets_budget)
    ratio, budget = cfg.training.auto_budget, cfg.training.max_minutes
    bounds = ([f"within {ratio:g}x the time of {quick} (training.auto_budget)"] if ratio and quick and slow else []) + (
        [f"within {budget:g} min (max_minutes)"] if budget else []
    )
    return (
        f"auto: {len(kinds)} candidates, the best on dev kept: {', '.join(m.name for m in kinds)}"
        + (f"; {slow} trains by epochs (up to {cfg.training.epochs}) and takes the longest" if slow else "")
        + (f"; ends {' and '.join(bounds)}" if bounds else ("; --max-minutes bounds it" if slow else ""))
    )


# the share of the quick candidates' time `model: auto` keeps for the ensemble after the BiLSTM
ENSEMBLE_RESERVE = 0.25
MIN_EPOCH_BUDGET = 1.0  # seconds: with less left, a candidate trained by epochs is skipped (said)


def epoch_budget(cfg: FinetuneConfig, results: dict, start: float) -> tuple[float | None, str]:
    """The ``max_minutes`` of a candidate trained by epochs under ``model: auto`` (``start``: when
    auto began): what is left of the run's ``max_minutes``, and of ``auto_budget`` times the time
    the ``sets_budget`` candidates took (their ``seconds``: auto as a whole ends within it), less
    :data:`ENSEMBLE_RESERVE` of it; with the words that say why (empty: no bound). 0 minutes:
    no time is left for it."""
    bounds = []
    elapsed = (time.time() - start) / 60
    if cfg.training.max_minutes is not None:
        bounds.append((max(cfg.training.max_minutes - elapsed, 0.0), "left of max_minutes"))
    quick = {n: r["seconds"] for n, r in results.items() if model_type(n).sets_budget}
    if cfg.training.auto_budget and quick:
        took = sum(quick.values())
        minutes = max((cfg.training.auto_budget - ENSEMBLE_RESERVE) * took / 60 - elapsed, 0.0)
        ratio = cfg.training.auto_budget
        why = f"auto ends within training.auto_budget {ratio:g} x the {seconds(took)} of {', '.join(quick)}"
        bounds.append((minutes, why))
    if not bounds:
        return None, ""
    minutes, why = min(bounds)
    return minutes, f"up to {seconds(60 * minutes)} ({why})"


def _train_candidates(job: FinetuneJob, tmp: Path) -> tuple[dict, dict, dict]:
    """The candidates of ``model: auto``, each saved in ``tmp/<name>`` (the ensemble made from the
    others): name → its result, name → its loaded model, name → why it was skipped."""
    start = time.time()
    cfg = job.cfg
    kinds = candidates(cfg)
    singles = [m for m in kinds if not m.combines]
    job.say(auto_plan(cfg))
    results: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for i, kind in enumerate(singles, 1):
        sub, bound = dataclasses.replace(cfg, model=kind.name), ""
        if kind.trains_by_epochs:
            minutes, bound = epoch_budget(cfg, results, start)
            if minutes is not None and minutes < MIN_EPOCH_BUDGET / 60:
                job.say(f"auto: candidate {kind.name} skipped: no time is left for it ({bound})")
                skipped[kind.name] = bound
                continue
            sub = with_values(sub, {"training": {"max_minutes": minutes}})
        job.say(f"auto: candidate {kind.name} ({i} of {len(kinds)})" + (f", {bound}" if bound else ""))
        plots = job.plots_dir if kind.trains_by_epochs else None
        results[kind.name] = train_task_model(job.replace(cfg=sub, out_dir=tmp / kind.name, plots_dir=plots))
    models = {n: load_task_model(tmp / n) for n in results}
    assert job.layer_cache is not None  # train_auto made one
    for m in models.values():
        m.share_layers(job.layer_cache)
    for kind in kinds:
        if kind.combines:
            results[kind.name], models[kind.name] = _combined(job, kind, {n: models[n] for n in results})
    return results, models, skipped


def _combined(job: FinetuneJob, kind, members: dict[str, TaskModel]) -> tuple[dict, TaskModel]:
    """The model ``kind`` combines from the trained ``members`` and its result (dev and test scored
    like a model's)."""
    start = time.time()
    cfg = dataclasses.replace(job.cfg, model=kind.name)
    splits = job.read_splits()
    model = kind.combine(cfg, members)
    result: dict[str, Any] = {
        "task": cfg.task,
        "model": kind.name,
        "seed": cfg.training.seed,
        "labels": model.labels,
        "data": splits.counts(),
        "epochs_run": 0,
        "best_epoch": None,
        "dev": model.scores(splits.dev),
        "history": [],
    }
    result.update(scores_on_test(model, splits.test))
    result["seconds"] = round(time.time() - start, 1)
    return result, model


@dataclass
class FinetunePosition:
    """Where finetuning is: the epoch in progress, the batches of it done, and what resuming needs."""

    epoch: int = 1
    batch_pos: int = 0
    step: int = 0
    loss_sum: float = 0.0  # per-example training loss summed over this epoch's batches so far
    n_seen: int = 0
    epoch_rng: tuple | None = None  # the batch shuffler's state before this epoch's shuffle


class FinetuneCheckpoint:
    """The resumable state of a run in ``cfg.training.checkpoint_dir`` (one directory, replaced whole)."""

    def __init__(self, path: str | Path, cfg: FinetuneConfig, net: BiLSTMTaskModel, optimizer):
        self.path, self.net, self.optimizer = Path(path), net, optimizer
        check_replaceable(self.path, FINETUNE_KIND)
        # budgets may change between a run and its resumption; everything else must match
        settings = dataclasses.asdict(cfg)
        budgets = ("epochs", "max_minutes", "patience", "checkpoint_dir")
        settings["training"] = {k: v for k, v in settings["training"].items() if k not in budgets}
        self.fingerprint = settings_fingerprint(settings)

    def save(self, best: BestSoFar, pos: FinetunePosition) -> None:
        state = {
            "position": dataclasses.asdict(pos),
            "torch_rng": torch.get_rng_state(),
            "best_state": best.state,
            "best": json.dumps(
                {
                    "score": best.score,
                    "epoch": best.epoch,
                    "dev": best.dev,
                    "bad_epochs": best.bad_epochs,
                    "history": best.history,
                },
                default=float,
            ),
        }
        config = {"fingerprint": self.fingerprint, "epoch": pos.epoch, "batch_pos": pos.batch_pos, "step": pos.step}
        save_finetune_checkpoint(self.path, self.net, self.optimizer, state, config)

    def restore(self, best: BestSoFar, log) -> FinetunePosition | None:
        """The saved position (weights, optimizer, RNG and ``best`` restored), or None to start afresh."""
        if directory_kind(self.path) != FINETUNE_KIND:
            return None
        try:
            if json.loads((self.path / "config.json").read_text()).get("fingerprint") != self.fingerprint:
                log(f"finetune: the checkpoint in {self.path} is from other settings; starting afresh")
                return None
            state = load_finetune_checkpoint(self.path, self.net, self.optimizer)
            for k, v in json.loads(state["best"]).items():
                setattr(best, k, v)
            best.state = state["best_state"]
            torch.set_rng_state(state["torch_rng"])
            pos = FinetunePosition(**state["position"])
        except DAMAGED as e:  # half restored: this run cannot go on from it, nor start afresh in this process
            raise PipelineError(
                f"{self.path}: damaged finetuning checkpoint ({type(e).__name__}: {str(e)[:120]}); "
                f"remove it, or give another checkpoint_dir, to start afresh"
            ) from None
        log(f"finetune: resuming at epoch {pos.epoch}, batch {pos.batch_pos} from {self.path}")
        return pos


class FinetuneRun:
    """One BiLSTM finetuning run on prepared inputs: epochs of shuffled batches until early stopping
    or a budget, the best dev weights kept, then test scores and the model directory.

    ``start``: when the run began (the time budget and the reported seconds count from it)."""

    def __init__(self, net: BiLSTMTaskModel, optimizer, accelerator, splits: TaskSplits, job: FinetuneJob):
        self.net, self.optimizer, self.accelerator, self.splits = net, optimizer, accelerator, splits
        self.cfg, self.out_dir, self.plots_dir, self.progress, self.log = (
            net.cfg,
            job.out_dir,
            job.plots_dir,
            job.progress,
            job.log,
        )

    def run(self, start: float) -> dict:
        """Train, restore the best weights, score the test split and save: the result."""
        best = self.epochs(start)
        assert best.state is not None  # check_learned refused a run without best weights
        self.net.load_state_dict(best.state)  # the dev scores of these weights are best.dev
        if self.net.task.after_training(self.net, self.splits.dev):  # e.g. thresholds picked on dev
            best.dev = self.net.scores(self.splits.dev)
        return self.result(best, start)

    def epochs(self, start: float) -> BestSoFar:
        """Epochs until ``patience`` epochs without a better dev score (or the epoch/time budget);
        the best weights so far are kept (``best.state``), written only by a run that ends well. With
        ``checkpoint_dir``: resumes from it, saves to it after every epoch and on SIGTERM/SIGHUP."""
        cfg, net = self.cfg, self.net
        rng = random.Random(cfg.training.seed)
        best = BestSoFar(net.task.trivial_score(self.splits.dev), cfg.training.min_epochs)
        ckpt = (
            FinetuneCheckpoint(cfg.training.checkpoint_dir, cfg, net, self.optimizer)
            if cfg.training.checkpoint_dir
            else None
        )
        resumed = ckpt.restore(best, self.log if self.progress else (lambda m: None)) if ckpt else None
        pos = resumed or FinetunePosition()
        tables = self.plot_tables(pos.epoch - 1 if resumed else None)
        lengths = [example_length(e) for e in self.splits.train.sentences]
        with DeferredTermination() as termination:  # a signal stops the run after a batch, checkpointed
            while pos.epoch <= cfg.training.epochs:
                if pos.epoch_rng is None:
                    pos.epoch_rng = rng.getstate()
                rng.setstate(pos.epoch_rng)  # a resumed epoch gets the same batches
                net.train()
                batches = shuffled_batches(self.splits.train_idx, lengths, cfg.training.batch_size, rng)
                epoch_start = time.time()
                if not self.train_epoch(batches, pos, termination):
                    break
                self.end_epoch(best, pos, tables, time.time() - start)
                pos = FinetunePosition(pos.epoch + 1, 0, pos.step, epoch_rng=rng.getstate())
                if ckpt:
                    ckpt.save(best, pos)
                if self.should_stop(best, pos, start, time.time() - epoch_start):
                    break
        if termination.signum is not None:
            if ckpt:
                ckpt.save(best, pos)
            termination.raise_if_requested()
        self.check_learned(best)
        return best

    def plot_tables(self, keep: int | None):
        """The live train/dev curves (``keep``: on resume, the rows of the epochs already done)."""
        if not self.plots_dir:
            return None
        d = Path(self.plots_dir)
        return (
            PlotTable(d / "train.tsv", ["epoch", "step", "loss"], keep),
            PlotTable(d / "dev.tsv", ["epoch", "step", self.net.task.metric], keep),
        )

    def should_stop(self, best: BestSoFar, pos: FinetunePosition, start: float, epoch_seconds: float) -> bool:
        """Early stopping, or the time budget: stopped when another epoch as long as the last
        (``epoch_seconds``) would pass it (said, and recorded in ``best.stopped_by``)."""
        cfg = self.cfg
        if best.bad_epochs >= cfg.training.patience:
            best.stopped_by = "patience"
            return True
        budget = 60 * cfg.training.max_minutes if cfg.training.max_minutes is not None else float("inf")
        if time.time() - start + epoch_seconds > budget and pos.epoch <= cfg.training.epochs:
            best.stopped_by = "max_minutes"
            self.log(
                f"finetune: stopped by the time budget ({seconds(budget)}): another epoch "
                f"(~{seconds(epoch_seconds)}) would pass it; {pos.epoch - 1} of at most {cfg.training.epochs} epochs "
                f"run, the best dev model so far is kept"
            )
            return True
        return False

    def check_learned(self, best: BestSoFar) -> None:
        """A run whose dev score was never a number saves nothing; one at chance level gets a hint."""
        task = self.net.task
        if best.state is None:
            raise PipelineError(
                f"the dev {task.metric} was never a number "
                f"({best.history[-1] if best.history else None}); nothing was saved"
            )
        if best.score <= best.trivial:
            self.log(task.trivial_hint.format(trivial=best.trivial))

    def train_epoch(self, batches: list[list[int]], pos: FinetunePosition, termination: DeferredTermination) -> bool:
        """The rest of this epoch's ``batches`` from ``pos.batch_pos``, updating ``pos``; False when a
        SIGTERM/SIGHUP stopped it after a batch."""
        net, train = self.net, self.splits.train
        bar = progress_bar(
            len(batches),
            f"epoch {pos.epoch}/{self.cfg.training.epochs}",
            "batch",
            self.progress,
            initial=pos.batch_pos,
            leave=False,
        )
        try:
            for idx in batches[pos.batch_pos :]:
                loss = net.loss([train.sentences[j] for j in idx], [train.targets[j] for j in idx])
                if not torch.isfinite(loss):
                    raise PipelineError(
                        f"loss is {float(loss.detach())} at epoch {pos.epoch}, step {pos.step + 1}; training "
                        f"stopped ({self.out_dir} is left as it was); try a lower lr"
                    )
                self.optimizer.zero_grad()
                self.accelerator.backward(loss)
                if self.cfg.training.grad_clip:
                    self.accelerator.clip_grad_norm_(net.parameters(), self.cfg.training.grad_clip)
                self.optimizer.step()
                pos.step += 1
                pos.batch_pos += 1
                pos.loss_sum += float(loss.detach()) * len(idx)
                pos.n_seen += len(idx)
                bar.update(1)
                bar.set_postfix(loss=f"{pos.loss_sum / pos.n_seen:.4f}")
                if termination.signum is not None:
                    return False
            return True
        finally:
            bar.close()

    def end_epoch(self, best: BestSoFar, pos: FinetunePosition, tables, elapsed: float) -> None:
        """Dev score of the epoch just trained; the best weights so far kept; curves and a log line."""
        net = self.net
        metric = net.task.metric
        loss = pos.loss_sum / max(pos.n_seen, 1)
        dev_scores = net.scores(self.splits.dev)
        score = net.dev_metric(dev_scores)
        best.history.append(
            {"epoch": pos.epoch, "step": pos.step, "train_loss": round(loss, 6), f"dev_{metric}": score}
        )
        improved = best.update(score, dev_scores, pos.epoch, net)
        if tables is not None:
            tables[0].add(epoch=pos.epoch, step=pos.step, loss=round(loss, 6))
            tables[1].add(epoch=pos.epoch, step=pos.step, **{metric: score})
        if self.progress:
            self.log(
                f"epoch {pos.epoch}/{self.cfg.training.epochs}: train loss {loss:.4f}  dev {metric} {score:.4f}"
                + ("  (best)" if improved else "")
                + f"  [{elapsed / 60:.1f} min]"
            )

    def result(self, best: BestSoFar, start: float) -> dict:
        """Test scores of the restored best model, the model directory written with them, the metrics."""
        cfg, net, splits = self.cfg, self.net, self.splits
        result: dict[str, Any] = {
            "task": cfg.task,
            "model": cfg.model,
            "inputs": cfg.inputs.use,
            "seed": cfg.training.seed,
            "labels": splits.labels,
            "data": splits.counts(),
            "epochs_run": len(best.history),
            "best_epoch": best.epoch,
            "stopped_by": best.stopped_by,
            "dev": best.dev,
            "history": best.history,
        }
        for key, mix in (("scalar_mix", net.features.mix), ("output_scalar_mix", net.features.output_mix)):
            if mix is not None:
                result[key] = {
                    "weights": [round(w, 4) for w in torch.softmax(mix.scalars.detach(), 0).tolist()],
                    "gamma": round(float(mix.gamma.detach()), 4),
                }
        result.update(scores_on_test(net, splits.test))
        result["seconds"] = round(time.time() - start, 1)
        saved = {"dev_scores": best.dev, "test_scores": result.get("test"), "epoch": best.epoch}
        net.save(self.out_dir, {**saved, "stopped_by": best.stopped_by})
        return result


def seconds(s: float) -> str:
    """A duration in words: ``"0.4 s"``, ``"39 s"``."""
    return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"


def summary_metrics(result: dict) -> dict:
    """The headline numbers of a finetune result, one level deep (what `dvc metrics show` prints):
    the task, the model, the dev score, the test scores, epochs, what stopped training, seconds."""
    m = task_named(result["task"]).metric
    out = {"task": result["task"], "model": result["model"], f"dev_{m}": result["dev"][m]}
    for k, v in result.get("test", {}).items():
        if isinstance(v, float):
            out[f"test_{k}"] = v
    for k in ("epochs_run", "best_epoch", "stopped_by", "seconds"):
        if result.get(k) is not None:
            out[k] = result[k]
    out["train_examples"] = result["data"]["train"]
    return out


def write_outputs(result: dict, metrics: str | Path | None = None, summary: str | Path | None = None) -> dict:
    """``metrics``: the result as JSON (scores per type, confusion, history; no predictions);
    ``summary``: :func:`summary_metrics` as JSON. Returns what ``metrics`` holds."""
    from pipeline.io import write_json_atomic

    full = {k: v for k, v in result.items() if k not in ("test_predictions", "test_targets")}
    if metrics:
        write_json_atomic(metrics, full, "finetune scores")
    if summary:
        write_json_atomic(summary, summary_metrics(result), "finetune summary")
    return full


def write_plots(result: dict, plots_dir: str | Path) -> None:
    """Beside the live curves: for a classifier the confusion matrix of the test split (the dev split
    without one) as a DVC plot (rows of ``{"actual", "predicted"}``), then the PNG pictures of the
    directory (:mod:`pipeline.plots`)."""
    from pipeline.io import write_text_atomic

    Path(plots_dir).mkdir(parents=True, exist_ok=True)  # no curves when auto skipped the BiLSTM
    scores = result["test" if "test" in result else "dev"]
    if "confusion" in scores:  # a classifier's
        rows = [
            {"actual": a, "predicted": p}
            for i, a in enumerate(scores["labels"])
            for j, p in enumerate(scores["labels"])
            for _ in range(scores["confusion"][i][j])
        ]
        # a DVC plot is a JSON list (no room for our mark); the plots directory holds only PLOT_FILES
        write_text_atomic(Path(plots_dir) / "confusion.json", json.dumps(rows, indent=2) + "\n")
    draw_pictures(plots_dir)
