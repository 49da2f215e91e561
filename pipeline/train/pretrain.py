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

Imports only torch, accelerate, numpy, safetensors and yaml (plus tqdm, which accelerate's
dependencies bring), so it runs on a bare GPU machine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from pipeline.config import ModelConfig, PretrainConfig
from pipeline.data.batching import BucketBatcher, make_batch
from pipeline.data.prepared import PreparedData
from pipeline.errors import PipelineError
from pipeline.io import write_json_atomic
from pipeline.model import BiLM, batch_inputs
from pipeline.train.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    model_config_dict,
    save_checkpoint,
    save_model_dir,
)
from pipeline.train.evaluate import lm_sums, perplexities

CHECKPOINT_FORMAT = 2  # bump when the checkpoint contents change: older ones are then not resumed
TRAIN_COLS = ["step", "epoch", "loss", "ppl", "tokens_per_sec", "lr", "elapsed_sec"]
VALID_COLS = ["step", "forward_ppl", "backward_ppl", "average_ppl"]
# Settings that may change between a run and its resumption (budgets and reporting).
RESUMABLE_KEYS = {"epochs", "max_steps", "max_minutes", "eval_every", "eval_max_tokens", "eval_max_sentences",
                  "checkpoint_every", "keep_checkpoints", "log_every", "mixed_precision"}


def fingerprint(model_cfg: ModelConfig, cfg: PretrainConfig, data: PreparedData) -> str:
    train = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE_KEYS}
    blob = json.dumps({"checkpoint_format": CHECKPOINT_FORMAT, "model": dataclasses.asdict(model_cfg), "train": train,
                       "vocab": data.vocab.tokens, "splits": data.meta["splits"]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, initial_accumulator_value=cfg.adagrad_init_acc,
                                   weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then constant, linear or cosine decay to 0 at ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.decay == "constant":
        return 1.0
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return 1.0 - frac if cfg.decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac))


class _Table:
    """An append-only TSV (a DVC plot): flushed per row so plots are live."""

    def __init__(self, path: Path, cols: list[str], keep_until_step: int | None):
        self.path, self.cols = path, cols
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if keep_until_step is not None and path.is_file():  # resuming: drop rows after the checkpoint
            lines = path.read_text().splitlines()
            rows = [l for l in lines[1:] if l and int(l.split("\t")[0]) <= keep_until_step]
        path.write_text("\t".join(cols) + "\n" + "".join(r + "\n" for r in rows))

    def add(self, **row) -> None:
        with open(self.path, "a") as f:
            f.write("\t".join(_fmt(row[c]) for c in self.cols) + "\n")


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with accelerate's dependencies
        return None
    return tqdm(total=total, initial=initial, unit="step", desc="pretrain", mininterval=1.0, dynamic_ncols=True)


def _diverged(what: str, step: int, ckpt_dir: Path) -> None:
    last = list_checkpoints(ckpt_dir)
    keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
    raise PipelineError(f"{what} at step {step + 1}; training stopped ({keep}). "
                        f"Try a lower pretrain.lr or pretrain.grad_clip")


def pretrain(
    model_cfg: ModelConfig,
    cfg: PretrainConfig,
    prepared_dir: str | Path,
    out_dir: str | Path,
    metrics_file: str | Path | None = None,
    plots_dir: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict:
    """Train a biLM on ``prepared_dir``; checkpoints under ``out_dir/checkpoints``, best model in
    ``out_dir/best``. Returns the final metrics (also written to ``metrics_file`` by the main process).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, gather_object

    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if torch.cuda.is_available() else "no"
    # why: adaptive softmax leaves tail clusters without gradient in batches that lack their words
    ddp = [DistributedDataParallelKwargs(find_unused_parameters=True)] if model_cfg.softmax == "adaptive" else []
    # cpu=True without a GPU: accelerate then treats torchrun/accelerate-launch workers as MULTI_CPU (gloo)
    accelerator = Accelerator(mixed_precision=mp, cpu=not torch.cuda.is_available(), kwargs_handlers=ddp)
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    device = accelerator.device

    data = PreparedData(prepared_dir)
    train = data.split("train")
    V = len(data.vocab)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    plots_dir = Path(plots_dir) if plots_dir else out_dir / "plots"
    fp = fingerprint(model_cfg, cfg, data)

    torch.manual_seed(cfg.seed)  # same initial weights on every process
    model = BiLM(model_cfg, V)
    if rank:
        torch.manual_seed(cfg.seed + rank)  # but each process its own dropout stream
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    sampler_gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    model.softmax.generator = sampler_gen

    batcher = BucketBatcher(train.lengths, cfg.max_tokens, seed=cfg.seed)
    n_batches = len(batcher.batches(0))
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    # --- resume ------------------------------------------------------------------------------
    step, epoch, batch_pos, best = 0, 0, 0, math.inf
    log_nll = log_tok = 0.0  # loss sums since the last row of train.tsv
    resumed_from = None
    ckpts = list_checkpoints(ckpt_dir) if resume else []
    if ckpts:
        meta = json.loads((ckpts[-1] / "state.json").read_text())
        if meta.get("fingerprint") == fp:
            state = load_checkpoint(ckpts[-1], model, optimizer)
            scheduler.load_state_dict(state["scheduler"])
            # every process's random streams (same process count), else the main one's
            mine = state["rng"][rank] if len(state["rng"]) == world else state["rng"][0]
            torch.set_rng_state(mine[0])
            sampler_gen.set_state(mine[1])
            if torch.cuda.is_available() and len(mine) > 2:
                torch.cuda.set_rng_state(mine[2])
            step, epoch, batch_pos, best = state["step"], state["epoch"], state["batch_pos"], state["best"]
            log_nll, log_tok = state["log_nll"], state["log_tok"]
            resumed_from = str(ckpts[-1])
        elif main:
            print(f"pretrain: checkpoints in {ckpt_dir} are from other settings; starting afresh", file=sys.stderr)
    if resumed_from is None and main:  # a fresh start: nothing from an earlier run may survive
        for old in (ckpt_dir, out_dir / "best"):
            if old.exists():
                shutil.rmtree(old)
    accelerator.wait_for_everyone()

    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)
    train_table = _Table(plots_dir / "train.tsv", TRAIN_COLS, step if resumed_from else None) if main else None
    valid_table = _Table(plots_dir / "valid.tsv", VALID_COLS, step if resumed_from else None) if main else None
    config_json = model_config_dict(model_cfg, V, data.max_chars,
                                    {"fingerprint": fp, "prepared_dir": str(prepared_dir)})

    def validate() -> dict:
        sums = lm_sums(raw_model, data, "valid", cfg.eval_max_tokens, rank, world, cfg.eval_max_sentences, device)
        sums = accelerator.reduce(sums.to(device), "sum").cpu() if world > 1 else sums
        return perplexities(sums)

    def checkpoint() -> None:
        rng = [torch.get_rng_state(), sampler_gen.get_state()]
        if torch.cuda.is_available():
            rng.append(torch.cuda.get_rng_state())
        state = {
            "step": step, "epoch": epoch, "batch_pos": batch_pos, "best": best, "fingerprint": fp,
            "log_nll": log_nll, "log_tok": log_tok, "scheduler": scheduler.state_dict(),
            "rng": gather_object([rng]) if world > 1 else [rng],  # one entry per process
        }
        if main:
            save_checkpoint(ckpt_dir, step, raw_model, optimizer, state, cfg.keep_checkpoints,
                            {**config_json, "step": step})
        accelerator.wait_for_everyone()

    if main:
        where = f"resuming at step {step} from {resumed_from}" if resumed_from else "from scratch"
        print(f"pretrain: {raw_model.n_params():,} parameters, {len(train):,} sentences, {n_batches} batches/epoch, "
              f"{total_steps} steps, {world} process(es) on {device}, mixed precision {mp}; {where}", file=sys.stderr)

    bar = _progress(total_steps, step, progress and main)
    t_start = time.perf_counter()
    log_t = time.perf_counter()
    total_tok = 0
    last_valid: dict | None = None
    stop = step >= total_steps
    model.train()
    while not stop:
        batches = batcher.batches(epoch)
        while batch_pos < len(batches) and not stop:
            window = batches[batch_pos : batch_pos + cfg.grad_accum]
            window_targets = sum(int(train.lengths[idx].sum()) + len(idx) for idx in window)
            nll_sum = torch.zeros((), dtype=torch.float64)
            for k, idx in enumerate(window):
                local = idx[rank::world]
                dummy = len(local) == 0  # keep every process in the collective; contributes nothing
                if dummy:
                    local = idx[:1]
                b = make_batch([train.sentence(int(i)) for i in local], V, local)
                chars, index = batch_inputs(b.type_ids, data.char_tensor)
                sync = k == len(window) - 1
                with (nullcontext() if sync else accelerator.no_sync(model)), accelerator.autocast():
                    out = model(chars.to(device), index.to(device), b.mask.to(device))
                    f, bw = raw_model.lm_nll(out, b.fwd_targets.to(device), b.bwd_targets.to(device))
                    loss = (f + bw) / (2 * window_targets) * world * (0.0 if dummy else 1.0)
                bad = torch.tensor([float(not torch.isfinite(loss))], device=device)
                if world > 1:  # every process stops together, or the others would wait forever
                    bad = accelerator.reduce(bad, "max")
                if bad.item():
                    what = f"loss is {loss.item()}" if not torch.isfinite(loss) else "loss is not finite in another process"
                    _diverged(what, step, ckpt_dir)
                accelerator.backward(loss)
                if not dummy:
                    nll_sum += (f + bw).detach().double().cpu()
            # the norm is the same on every process (gradients are already averaged)
            norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
            if not torch.isfinite(torch.as_tensor(norm)):
                _diverged(f"the gradient norm is {float(norm)}", step, ckpt_dir)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            batch_pos += len(window)

            sums = torch.stack([nll_sum, torch.tensor(float(window_targets), dtype=torch.float64)])
            if world > 1:
                nll_sum_all = accelerator.reduce(nll_sum.to(device), "sum").cpu()
                sums = torch.stack([nll_sum_all, sums[1]])
            log_nll += float(sums[0])
            log_tok += float(sums[1])
            total_tok += window_targets

            if cfg.max_minutes is not None:
                over = torch.tensor([float(time.perf_counter() - t_start > 60 * cfg.max_minutes)], device=device)
                if world > 1:
                    over = accelerator.reduce(over, "max")
                stop = bool(over.item())
            stop = stop or step >= total_steps

            if main and (step % cfg.log_every == 0 or stop):
                now = time.perf_counter()
                loss_tok = log_nll / (2 * max(log_tok, 1))
                tps = log_tok / max(now - log_t, 1e-9)
                train_table.add(step=step, epoch=epoch, loss=loss_tok, ppl=math.exp(min(loss_tok, 50)),
                                tokens_per_sec=tps, lr=scheduler.get_last_lr()[0], elapsed_sec=now - t_start)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_tok:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
                log_nll = log_tok = 0.0
                log_t = now
            if bar is not None:
                bar.update(1)

            if step % cfg.eval_every == 0 or stop:
                last_valid = validate()
                if main:
                    valid_table.add(step=step, **{k: last_valid[k] for k in VALID_COLS[1:]})
                    if last_valid["average_ppl"] < best:
                        best = last_valid["average_ppl"]
                        save_model_dir(out_dir / "best", raw_model, {**config_json, "step": step, "valid": last_valid})
                accelerator.wait_for_everyone()
            if step % cfg.checkpoint_every == 0 or stop:
                checkpoint()
        if batch_pos >= len(batches):
            epoch += 1
            batch_pos = 0

    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t_start
    if last_valid is None:  # resumed a finished run: report the best model's numbers
        last_valid = validate()
    best_cfg = json.loads((out_dir / "best" / "config.json").read_text()) if (out_dir / "best").is_dir() else {}
    metrics = {
        "steps": step,
        "epochs": round(epoch + batch_pos / max(n_batches, 1), 4),
        "parameters": raw_model.n_params(),
        "best_step": best_cfg.get("step"),
        "best_valid_forward_ppl": best_cfg.get("valid", {}).get("forward_ppl"),
        "best_valid_backward_ppl": best_cfg.get("valid", {}).get("backward_ppl"),
        "best_valid_average_ppl": best_cfg.get("valid", {}).get("average_ppl"),
        "last_valid_average_ppl": last_valid["average_ppl"],
        "train_tokens_per_sec": round(total_tok / max(elapsed, 1e-9), 1) if total_tok else None,  # None: no step ran
        "train_minutes_this_run": round(elapsed / 60, 3),
        "processes": world,
        "resumed_from_step": int(resumed_from.rsplit("-", 1)[1]) if resumed_from else None,
    }
    if main and metrics_file:
        write_json_atomic(metrics_file, metrics)
    accelerator.wait_for_everyone()
    return metrics
