"""biLM pretraining with accelerate: the same code on CPU, one GPU, or many GPUs/nodes (DDP).

One optimizer step::

    window = the next ``grad_accum`` global batches of this epoch (same on every process)
    for each batch in window:                       process r takes sentences r, r+W, r+2W, ...
        loss_r = (fwd NLL + bwd NLL summed over its sentences) / (2 × targets in the whole window) × W
        backward                                     (DDP averages over W processes → exact global mean)
    clip grad norm → optimizer step → scheduler step

Because the normaliser is the window's global target count (known to every process from the
sentence lengths), W processes reproduce one process's step up to float rounding.

Resumable: a checkpoint holds model, optimizer, scheduler, RNG states and the data position
(epoch, batch within epoch), so a resumed run follows the same batches and random draws as an
uninterrupted one. A checkpoint is reused only if its fingerprint (model, data, optimizer and
batching settings) matches the current run.

The output directory (kind ``pretrain-run``, recorded in ``run.json``) holds ``best/``,
``checkpoints/`` and, by default, ``plots/``.

Imports only torch, accelerate, numpy, safetensors and yaml (plus tqdm, which accelerate's
dependencies bring), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.bilm.model import BiLM, batch_inputs
from pipeline.config import ModelConfig, PretrainConfig
from pipeline.cpu import bf16_pays, check_fits_memory
from pipeline.data.batching import BucketBatcher, make_batch
from pipeline.data.prepared import PreparedData
from pipeline.errors import DeferredTermination, PipelineError
from pipeline.io import (
    PlotTable,
    check_plots_dir,
    check_replaceable,
    output_lock,
    remove_stale_temporaries,
    write_json,
    write_json_atomic,
)
from pipeline.lm import perplexities
from pipeline.plots import PNG_FILES, draw_pictures
from pipeline.progress import progress_bar
from pipeline.train.checkpoint import (
    DAMAGED,
    list_checkpoints,
    load_checkpoint,
    model_config_dict,
    save_checkpoint,
    save_model_dir,
    settings_fingerprint,
)
from pipeline.train.evaluate import prepared_lm_sums

CHECKPOINT_FORMAT = 2  # bump when the checkpoint contents change: older ones are then not resumed
PRETRAIN_RUN_KIND = "pretrain-run"
TRAIN_COLS = ["step", "epoch", "loss", "ppl", "tokens_per_sec", "lr", "elapsed_sec"]
VALID_COLS = ["step", "forward_ppl", "backward_ppl", "average_ppl"]
PLOT_FILES = ("train.tsv", "valid.tsv", *PNG_FILES)
# Settings that may change between a run and its resumption (budgets and reporting).
RESUMABLE_KEYS = {
    "epochs",
    "max_steps",
    "max_minutes",
    "eval_every",
    "eval_max_tokens",
    "eval_max_sentences",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "mixed_precision",
}


def run_fingerprint(
    model_cfg: ModelConfig, cfg: PretrainConfig, data: PreparedData, init_state: dict | None = None
) -> str:
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE_KEYS}
    init = (
        None
        if init_state is None
        else hashlib.sha256(
            b"".join(init_state[k].detach().cpu().contiguous().numpy().tobytes() for k in sorted(init_state))
        ).hexdigest()
    )
    return settings_fingerprint(
        {
            "checkpoint_format": CHECKPOINT_FORMAT,
            "model": dataclasses.asdict(model_cfg),
            "train": train,
            "vocab": data.vocab.tokens,
            "splits": data.meta["splits"],
            **({"init": init} if init else {}),
        }
    )


def bilm_optimizer(model: torch.nn.Module, cfg: PretrainConfig, fused: bool) -> torch.optim.Optimizer:
    """The configured optimizer; ``fused``: PyTorch's fused CPU kernel (one pass per tensor instead of the
    per-tensor op loop, the same update up to rounding; GPUs keep PyTorch's default, since Adagrad has no
    fused CUDA kernel)."""
    params = [p for p in model.parameters() if p.requires_grad]
    use_fused = fused or None  # None: PyTorch's default
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(
            params,
            lr=cfg.lr,
            initial_accumulator_value=cfg.adagrad_init_acc,
            weight_decay=cfg.weight_decay,
            fused=use_fused,
        )
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=use_fused)


def lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant, linear or cosine decay to 0 at ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    span = max(1, (cfg.max_steps or 0) - cfg.warmup_steps)  # a decay needs max_steps (the config checks)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return 1.0 - frac if cfg.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))


def _progress(total: int, initial: int, enabled: bool):
    return progress_bar(total, "pretrain", "step", initial=initial) if enabled else None


def check_output_dirs(out_dir: Path, plots_dir: Path) -> None:
    """Refuse an ``--out`` that holds another kind of output, or ``--plots`` holding other files;
    mark ``out_dir`` as a pretraining run (``run.json``)."""
    check_replaceable(out_dir, PRETRAIN_RUN_KIND)
    check_plots_dir(plots_dir, PLOT_FILES)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "run.json").is_file():
        write_json(out_dir / "run.json", {"kind": PRETRAIN_RUN_KIND})


@dataclass
class PretrainPosition:
    """Where training is: what a checkpoint stores besides weights, optimizer and RNG."""

    step: int = 0
    epoch: int = 0
    batch_pos: int = 0  # batches of this epoch already done
    best: float = math.inf  # best validation average perplexity so far
    log_nll: float = 0.0  # loss sums since the last row of train.tsv
    log_tok: float = 0.0


class PretrainRun:
    """One training run: setup, resume, the step loop, validation, checkpoints, final metrics."""

    def __init__(
        self,
        model_cfg: ModelConfig,
        cfg: PretrainConfig,
        prepared_dir,
        out_dir,
        plots_dir,
        progress: bool,
        init_state: dict | None = None,
    ):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg = cfg
        mp = cfg.mixed_precision
        self.mp = ("bf16" if torch.cuda.is_available() else "no") if mp == "auto" else mp
        if self.mp == "bf16" and not torch.cuda.is_available() and not bf16_pays("cpu"):
            self.mp = "no"
        # why: adaptive softmax leaves tail clusters without gradient in batches that lack their words
        ddp = [DistributedDataParallelKwargs(find_unused_parameters=True)] if model_cfg.softmax == "adaptive" else []
        # cpu=True without a GPU: accelerate then treats torchrun/accelerate-launch workers as MULTI_CPU (gloo)
        self.accelerator = Accelerator(mixed_precision=self.mp, cpu=not torch.cuda.is_available(), kwargs_handlers=ddp)
        acc = self.accelerator
        self.rank, self.world, self.main, self.device = (
            acc.process_index,
            acc.num_processes,
            acc.is_main_process,
            acc.device,
        )
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.plots_dir = Path(plots_dir) if plots_dir else self.out_dir / "plots"
        if self.main:
            check_output_dirs(self.out_dir, self.plots_dir)
        self.progress = progress and self.main
        self.prepared_dir = prepared_dir
        self.data = PreparedData(prepared_dir)
        self.train = self.data.split("train")
        self.V = len(self.data.vocab)
        model_cfg.check_vocab(self.V, f"{prepared_dir}")
        model_cfg.check_max_chars(self.data.max_chars, f"{prepared_dir}")
        if not torch.cuda.is_available():  # weights, gradients and Adam's two moments in this machine's memory
            check_fits_memory(model_cfg.parameter_estimate(self.V), 4, "model", "params")
        self.fp = run_fingerprint(model_cfg, cfg, self.data, init_state)
        self._build(model_cfg, init_state)

    def _build(self, model_cfg: ModelConfig, init_state: dict | None) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # same initial weights on every process
        self.model = BiLM(model_cfg, self.V)
        if init_state is not None:  # continue from a trained biLM (domain adaptation)
            self.model.load_state_dict(init_state)
        if self.rank:
            torch.manual_seed(cfg.seed + self.rank)  # but each process its own dropout stream
        self.optimizer = bilm_optimizer(self.model, cfg, fused=self.device.type == "cpu")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg))
        self.sampler_gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)
        self.model.lm_head.generator = self.sampler_gen
        self.batcher = BucketBatcher(self.train.lengths, cfg.max_tokens, seed=cfg.seed)
        self.n_batches = len(self.batcher.batches(0))
        self.total_steps = math.ceil(self.n_batches / cfg.grad_accum) * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.config_json = model_config_dict(
            model_cfg,
            self.V,
            self.data.max_chars,
            {"fingerprint": self.fp, "prepared_dir": str(self.prepared_dir), "prepared_id": self.data.identity},
        )

    # --- resume ------------------------------------------------------------------------------

    def resume(self, allowed: bool) -> tuple[PretrainPosition, str | None]:
        """The newest checkpoint with this run's fingerprint restored, or a fresh start (which
        removes the old checkpoints and best model). Returns (position, checkpoint path or None)."""
        pos, resumed_from = PretrainPosition(), None
        if self.main:  # a killed run's half-written checkpoint or best/ (we hold the output lock)
            for d in (self.ckpt_dir, self.out_dir):
                remove_stale_temporaries(d)
        damaged = []
        for ckpt in reversed(list_checkpoints(self.ckpt_dir) if allowed else []):
            try:
                if json.loads((ckpt / "state.json").read_text()).get("fingerprint") != self.fp:
                    self._note(f"pretrain: checkpoints in {self.ckpt_dir} are from other settings; starting afresh")
                    break
                pos, resumed_from = self._restore(ckpt), str(ckpt)
                break
            except DAMAGED as e:  # e.g. a truncated file after a crash: the previous checkpoint is still good
                damaged.append(ckpt.name)
                self._note(
                    f"pretrain: {ckpt} is damaged ({type(e).__name__}: {str(e)[:120]}); trying the previous checkpoint"
                )
        else:
            if damaged:  # never delete them on our own: the user decides
                raise PipelineError(
                    f"{self.ckpt_dir}: every checkpoint is damaged ({', '.join(damaged)}); "
                    f"remove them or run with --no-resume to start afresh"
                )
        if resumed_from is None and self.main:  # a fresh start: nothing from an earlier run may survive
            for old in (self.ckpt_dir, self.out_dir / "best"):
                if old.exists():
                    shutil.rmtree(old)
        self.accelerator.wait_for_everyone()
        return pos, resumed_from

    def _note(self, line: str) -> None:
        if self.main:
            print(line, file=sys.stderr)

    def _restore(self, ckpt: Path) -> PretrainPosition:
        state = load_checkpoint(ckpt, self.model, self.optimizer)
        for group in self.optimizer.param_groups:  # the kernel is this machine's, not the checkpoint's
            group["fused"] = self.optimizer.defaults["fused"]
        self.scheduler.load_state_dict(state["scheduler"])
        # every process's random streams (same process count), else the main one's
        mine = state["rng"][self.rank] if len(state["rng"]) == self.world else state["rng"][0]
        torch.set_rng_state(mine[0])
        self.sampler_gen.set_state(mine[1])
        if torch.cuda.is_available() and len(mine) > 2:
            torch.cuda.set_rng_state(mine[2])
        return PretrainPosition(
            state["step"], state["epoch"], state["batch_pos"], state["best"], state["log_nll"], state["log_tok"]
        )

    # --- one optimizer step --------------------------------------------------------------------

    def _diverged(self, what: str, step: int) -> None:
        last = list_checkpoints(self.ckpt_dir)
        keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
        raise PipelineError(
            f"{what} at step {step + 1}; training stopped ({keep}). Try a lower pretrain.lr or pretrain.grad_clip"
        )

    def _backward(self, idx, k: int, n_window: int, window_targets: int, step: int) -> torch.Tensor:
        """Forward + backward of this process's share of one batch of the window: its summed NLL."""
        acc, device = self.accelerator, self.device
        local = idx[self.rank :: self.world]
        dummy = len(local) == 0  # keep every process in the collective; contributes nothing
        if dummy:
            local = idx[:1]
        b = make_batch([self.train.sentence(int(i)) for i in local], self.V, local)
        chars, index = batch_inputs(b.type_ids, self.data.char_tensor)
        sync = k == n_window - 1
        with nullcontext() if sync else acc.no_sync(self.ddp_model), acc.autocast():
            out = self.ddp_model(chars.to(device), index.to(device), b.mask.to(device))
            f, bw = self.raw_model.lm_nll(out, b.fwd_targets.to(device), b.bwd_targets.to(device))
            loss = (f + bw) / (2 * window_targets) * self.world * (0.0 if dummy else 1.0)
        bad = torch.tensor([float(not torch.isfinite(loss))], device=device)
        if self.world > 1:  # every process stops together, or the others would wait forever
            bad = acc.reduce(bad, "max")
        if bad.item():
            self._diverged(
                f"loss is {loss.item()}" if not torch.isfinite(loss) else "loss is not finite in another process", step
            )
        acc.backward(loss)
        return torch.zeros((), dtype=torch.float64) if dummy else (f + bw).detach().double().cpu()

    def optimizer_step(self, window, step: int) -> tuple[float, int]:
        """One step over ``window`` (a list of global batches): (summed NLL of all processes, targets)."""
        acc = self.accelerator
        window_targets = sum(int(self.train.lengths[idx].sum()) + len(idx) for idx in window)
        nll_sum = torch.zeros((), dtype=torch.float64)
        for k, idx in enumerate(window):
            nll_sum += self._backward(idx, k, len(window), window_targets, step)
        # the norm is the same on every process (gradients are already averaged)
        norm = acc.clip_grad_norm_(self.ddp_model.parameters(), self.cfg.grad_clip or float("inf"))
        if not torch.isfinite(torch.as_tensor(norm)):
            self._diverged(f"the gradient norm is {float(norm)}", step)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            nll_sum = acc.reduce(nll_sum.to(self.device), "sum").cpu()
        return float(nll_sum), window_targets

    # --- validation and checkpoints --------------------------------------------------------------

    def validate(self) -> dict:
        cfg = self.cfg
        sums = prepared_lm_sums(
            self.raw_model,
            self.data,
            "valid",
            cfg.eval_max_tokens,
            self.rank,
            self.world,
            cfg.eval_max_sentences,
            self.device,
        )
        sums = self.accelerator.reduce(sums.to(self.device), "sum").cpu() if self.world > 1 else sums
        return perplexities(*sums.tolist())

    def validate_and_keep_best(self, pos: PretrainPosition, valid_table) -> dict:
        valid = self.validate()
        if self.main:
            valid_table.add(step=pos.step, **{k: valid[k] for k in VALID_COLS[1:]})
            if self.progress and not sys.stderr.isatty():  # no bar in a log: a line per validation instead
                print(
                    f"pretrain: step {pos.step}/{self.total_steps}, valid perplexity {valid['average_ppl']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
            if valid["average_ppl"] < pos.best:
                pos.best = valid["average_ppl"]
                save_model_dir(
                    self.out_dir / "best", self.raw_model, {**self.config_json, "step": pos.step, "valid": valid}
                )
        self.accelerator.wait_for_everyone()
        return valid

    def checkpoint(self, pos: PretrainPosition) -> None:
        from accelerate.utils import gather_object

        rng = [torch.get_rng_state(), self.sampler_gen.get_state()]
        if torch.cuda.is_available():
            rng.append(torch.cuda.get_rng_state())
        state = {
            **dataclasses.asdict(pos),
            "fingerprint": self.fp,
            "scheduler": self.scheduler.state_dict(),
            "rng": gather_object([rng]) if self.world > 1 else [rng],
        }  # one entry per process
        if self.main:
            save_checkpoint(
                self.ckpt_dir,
                pos.step,
                self.raw_model,
                self.optimizer,
                state,
                self.cfg.keep_checkpoints,
                {**self.config_json, "step": pos.step},
            )
        self.accelerator.wait_for_everyone()

    # --- the loop --------------------------------------------------------------------------------

    def out_of_time(self, t_start: float) -> bool:
        if self.cfg.max_minutes is None:
            return False
        over = torch.tensor([float(time.perf_counter() - t_start > 60 * self.cfg.max_minutes)], device=self.device)
        if self.world > 1:
            over = self.accelerator.reduce(over, "max")
        return bool(over.item())

    def run(self, resume: bool) -> dict:
        """Train until the step/epoch/time budget; returns the final metrics."""
        pos, resumed_from = self.resume(resume)
        self.ddp_model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.raw_model = self.accelerator.unwrap_model(self.ddp_model)
        keep = pos.step if resumed_from else None
        tables = (
            (
                PlotTable(self.plots_dir / "train.tsv", TRAIN_COLS, keep),
                PlotTable(self.plots_dir / "valid.tsv", VALID_COLS, keep),
            )
            if self.main
            else (None, None)
        )
        if self.main:
            where = f"resuming at step {pos.step} from {resumed_from}" if resumed_from else "from scratch"
            print(
                f"pretrain: {self.raw_model.n_params():,} parameters, {len(self.train):,} sentences, "
                f"{self.n_batches} batches/epoch, {self.total_steps} steps, {self.world} process(es) on "
                f"{self.device}, mixed precision {self.mp}; {where}",
                file=sys.stderr,
            )
        t_start = time.perf_counter()
        self.stopped_by = "steps"  # the step budget (max_steps, or epochs × batches)
        total_tok, last_valid = self.loop(pos, tables, t_start)
        elapsed = time.perf_counter() - t_start
        if self.main and self.stopped_by == "max_minutes":
            print(
                f"pretrain: stopped by the time budget (max_minutes={self.cfg.max_minutes:g}) at step {pos.step} "
                f"of {self.total_steps}; the best validated model is in {self.out_dir / 'best'}",
                file=sys.stderr,
            )
        if last_valid is None:  # resumed a finished run: report the best model's numbers
            last_valid = self.validate()
        return self.final_metrics(pos, last_valid, total_tok, elapsed, resumed_from)

    def loop(self, pos: PretrainPosition, tables, t_start: float) -> tuple[int, dict | None]:
        """Steps until the budget: (targets trained on in this run, the last validation or None)."""
        cfg = self.cfg
        bar = _progress(self.total_steps, pos.step, self.progress)
        log_t = time.perf_counter()
        total_tok, last_valid = 0, None
        stop = pos.step >= self.total_steps
        self.ddp_model.train()
        # SIGTERM/SIGHUP end the current step, write a checkpoint (no validation) and then stop
        with DeferredTermination() as termination:
            while not stop:
                batches = self.batcher.batches(pos.epoch)
                while pos.batch_pos < len(batches) and not stop:
                    window = batches[pos.batch_pos : pos.batch_pos + cfg.grad_accum]
                    nll, targets = self.optimizer_step(window, pos.step)
                    pos.step += 1
                    pos.batch_pos += len(window)
                    pos.log_nll += nll
                    pos.log_tok += float(targets)
                    total_tok += targets
                    terminating = self.termination_requested(termination)
                    over_time = not terminating and self.out_of_time(t_start)
                    stop = terminating or over_time or pos.step >= self.total_steps
                    if over_time:
                        self.stopped_by = "max_minutes"
                    if self.main and (pos.step % cfg.log_every == 0 or stop):
                        log_t = self.log_row(pos, tables[0], bar, log_t, t_start)
                    if bar is not None:
                        bar.update(1)
                    if (pos.step % cfg.eval_every == 0 or stop) and not terminating:
                        last_valid = self.validate_and_keep_best(pos, tables[1])
                    if pos.step % cfg.checkpoint_every == 0 or stop:
                        self.checkpoint(pos)
                if pos.batch_pos >= len(batches):
                    pos.epoch += 1
                    pos.batch_pos = 0
            if bar is not None:
                bar.close()
        termination.raise_if_requested()
        return total_tok, last_valid

    def termination_requested(self, termination: DeferredTermination) -> bool:
        """Whether any process got SIGTERM/SIGHUP (all processes then stop at the same step)."""
        flag = termination.signum is not None
        if self.world > 1:
            t = torch.tensor([float(flag)], device=self.device)
            flag = bool(self.accelerator.reduce(t, "max").item())
            if flag and termination.signum is None:
                import signal

                termination.signum = signal.SIGTERM  # another process was told to stop
        return flag

    def log_row(self, pos: PretrainPosition, train_table, bar, log_t: float, t_start: float) -> float:
        """A row of train.tsv from the sums since the last one; returns the new log time."""
        now = time.perf_counter()
        loss_tok = pos.log_nll / (2 * max(pos.log_tok, 1))
        tps = pos.log_tok / max(now - log_t, 1e-9)
        train_table.add(
            step=pos.step,
            epoch=pos.epoch,
            loss=loss_tok,
            ppl=math.exp(min(loss_tok, 50)),
            tokens_per_sec=tps,
            lr=self.scheduler.get_last_lr()[0],
            elapsed_sec=now - t_start,
        )
        if bar is not None:
            bar.set_postfix(loss=f"{loss_tok:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
        pos.log_nll = pos.log_tok = 0.0
        return now

    def final_metrics(
        self, pos: PretrainPosition, last_valid: dict, total_tok: int, elapsed: float, resumed_from: str | None
    ) -> dict:
        best_dir = self.out_dir / "best"
        best_cfg = json.loads((best_dir / "config.json").read_text()) if best_dir.is_dir() else {}
        best_valid = best_cfg.get("valid", {})
        return {
            "steps": pos.step,
            "epochs": round(pos.epoch + pos.batch_pos / max(self.n_batches, 1), 4),
            "parameters": self.raw_model.n_params(),
            "best_step": best_cfg.get("step"),
            "best_valid_forward_ppl": best_valid.get("forward_ppl"),
            "best_valid_backward_ppl": best_valid.get("backward_ppl"),
            "best_valid_average_ppl": best_valid.get("average_ppl"),
            "last_valid_average_ppl": last_valid["average_ppl"],
            "train_tokens_per_sec": round(total_tok / max(elapsed, 1e-9), 1)
            if total_tok
            else None,  # None: no step ran
            "train_minutes_this_run": round(elapsed / 60, 3),
            "processes": self.world,
            "stopped_by": self.stopped_by,
            "resumed_from_step": int(resumed_from.rsplit("-", 1)[1]) if resumed_from else None,
        }


def draw_plots(plots_dir: str | Path | None) -> None:
    """The PNG curves of the run (:mod:`pipeline.plots`); on a machine without matplotlib (a bare
    GPU node) a note instead: `elmo plot DIR` draws them anywhere later."""
    if not plots_dir:
        return
    try:
        draw_pictures(plots_dir)
    except ImportError:
        print(
            f"pretrain: matplotlib is not installed: no PNG curves (`elmo plot {plots_dir}` draws them)",
            file=sys.stderr,
        )


def pretrain(
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    prepared_dir: str | Path,
    out_dir: str | Path,
    metrics_file: str | Path | None = None,
    plots_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    init_state: dict | None = None,
) -> dict:
    """Train a biLM on ``prepared_dir``; checkpoints under ``out_dir/checkpoints``, best model in
    ``out_dir/best``. Returns the final metrics (also written to ``metrics_file`` by the main process).
    ``init_state``: start from these weights (a trained biLM's, with its softmax) instead of random ones.
    """
    # one run per output directory: the main process holds the lock (RANK is set by torchrun/accelerate)
    with output_lock(out_dir) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        run = PretrainRun(model_cfg, cfg, prepared_dir, out_dir, plots_dir, progress, init_state)
        metrics = run.run(resume)
        if run.main:
            write_json(Path(out_dir) / "run.json", {"kind": PRETRAIN_RUN_KIND, "stopped_by": metrics["stopped_by"]})
            draw_plots(plots_dir)
        if run.main and metrics_file:
            write_json_atomic(metrics_file, metrics, "pretrain summary")
        run.accelerator.wait_for_everyone()
    return metrics
