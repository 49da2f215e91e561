"""Finetuning a downstream task (NER tagger or sentence classifier) on accelerate.

    read train/dev(/test) ─▶ label set from train (dev/test labels must be known)
        ─▶ TaskModel(features [word2vec ; ELMo mix], head) on accelerator.device
        ─▶ epochs of shuffled batches (Adam; the biLM in its own group at encoder_lr if finetuned)
            after each epoch: dev score → plots/{train,dev}.tsv, best so far → out_dir (atomic)
        ─▶ early stopping after `patience` epochs without improvement, best weights restored
        ─▶ test scores, model directory rewritten with its scores

One process (one device): the tasks are small next to pretraining. Same config + seed → same model
on the same machine.
"""
from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import torch

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.task import METRIC, TaskModel, check_labels, label_set, read_task_data, tokenizer_for


def _write_tsv(path: Path, header: list[str], rows: list[list]) -> None:
    from pipeline.io import write_text_atomic

    write_text_atomic(path, "\t".join(header) + "\n" + "".join("\t".join(str(x) for x in r) + "\n" for r in rows))


def _batches(indices: list[int], lengths: list[int], size: int, rng: random.Random, pool: int = 20) -> list[list[int]]:
    """Shuffled batches of similar lengths: shuffle, sort each run of ``pool`` batches' worth by
    length, cut, shuffle the batches (less padding for the task LSTM and the CRF's time loop)."""
    order = list(indices)
    rng.shuffle(order)
    batches = []
    for k in range(0, len(order), size * pool):
        chunk = sorted(order[k : k + size * pool], key=lambda i: lengths[i])
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def load_inputs(cfg: FinetuneConfig):
    """(encoder, word2vec lookup) as ``cfg.inputs`` asks; unused ones are not loaded."""
    encoder = word2vec = None
    if cfg.inputs in ("both", "elmo"):
        from pipeline.export import Encoder

        encoder = Encoder.from_pretrained(cfg.encoder)
    if cfg.inputs in ("both", "word2vec"):
        from pipeline.task import load_word2vec_lookup

        word2vec = load_word2vec_lookup(cfg.word2vec, cfg.seed)
    return encoder, word2vec


def finetune(cfg: FinetuneConfig, out_dir: str | Path, plots_dir: str | Path | None = None,
             progress: bool = True, inputs=None, log=print, layer_cache: dict | None = None) -> dict:
    """Train, keep the best dev model in ``out_dir``, return metrics (dev, test, history, data counts).

    ``inputs``: an already loaded (encoder, word2vec) pair to reuse (e.g. across seeds);
    ``layer_cache``: a dict of frozen-biLM layers per sentence shared across runs with that encoder."""
    from accelerate import Accelerator
    from tqdm import tqdm

    from pipeline.io import check_replaceable

    check_replaceable(out_dir, "config.json")  # a bad --out fails now, not after an epoch
    start = time.time()
    encoder, word2vec = inputs if inputs is not None else load_inputs(cfg)
    if cfg.finetune_encoder and inputs is not None:
        encoder = copy.deepcopy(encoder)  # the caller's encoder stays as it was
    tokenize = tokenizer_for(encoder if cfg.inputs != "word2vec" else None)
    train = read_task_data(cfg, cfg.train, tokenize)
    dev = read_task_data(cfg, cfg.dev, tokenize)
    test = read_task_data(cfg, cfg.test, tokenize) if cfg.test else None
    train_idx = [i for i, s in enumerate(train.sentences) if s]
    if not train_idx:
        raise PipelineError(f"{cfg.train}: no labelled examples")
    if not dev.sentences:
        raise PipelineError(f"{cfg.dev}: no labelled examples")
    labels = label_set(cfg, train)
    if cfg.task == "classify" and len(labels) < 2:
        raise PipelineError(f"{cfg.train}: only one label ({labels[0]!r}); a classifier needs at least two")
    for d in (dev, test):
        if d is not None:
            check_labels(d, labels, cfg.task)

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    model = TaskModel(cfg, labels, encoder, word2vec if cfg.inputs != "elmo" else None)
    if not cfg.finetune_encoder and model.features.encoder is not None:
        if layer_cache is not None:
            model.features._layers = layer_cache
        model.features.precompute(train.sentences + dev.sentences + (test.sentences if test else []))
    bilm = [p for n, p in model.named_parameters() if n.startswith("features.bilm.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("features.bilm.") and p.requires_grad]
    groups = [{"params": rest, "lr": cfg.lr}] + ([{"params": bilm, "lr": cfg.encoder_lr}] if bilm else [])
    optimizer = torch.optim.Adam(groups)
    model, optimizer = accelerator.prepare(model, optimizer)
    net = accelerator.unwrap_model(model)

    rng = random.Random(cfg.seed)
    plots = Path(plots_dir) if plots_dir else None
    train_rows, dev_rows, history = [], [], []
    best, best_state, best_dev, best_epoch, bad_epochs, step = -1.0, None, None, 0, 0, 0
    metric = METRIC[cfg.task]
    counts = {"train": len(train_idx), "dev": len(dev.sentences), "test": len(test.sentences) if test else 0,
              "labels": len(labels), "repaired_tags": train.repaired + dev.repaired + (test.repaired if test else 0),
              "skipped_empty": train.skipped_empty + dev.skipped_empty + (test.skipped_empty if test else 0)}
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        batches = _batches(train_idx, [len(s) for s in train.sentences], cfg.batch_size, rng)
        total, n_seen = 0.0, 0
        bar = tqdm(batches, desc=f"{cfg.task} epoch {epoch}", disable=not progress, leave=False, unit="batch")
        for idx in bar:
            loss = net.loss([train.sentences[j] for j in idx], [train.targets[j] for j in idx])
            if not torch.isfinite(loss):
                raise PipelineError(f"loss is {float(loss)} at epoch {epoch}, step {step + 1}; training stopped "
                                    f"(the best model so far, if any, is in {out_dir}); try a lower lr")
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            step += 1
            total += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            bar.set_postfix(loss=f"{total / n_seen:.4f}")
        bar.close()
        dev_scores = net.scores(dev)
        score = net.dev_metric(dev_scores)
        history.append({"epoch": epoch, "step": step, "train_loss": round(total / n_seen, 6), f"dev_{metric}": score})
        train_rows.append([epoch, step, round(total / n_seen, 6)])
        dev_rows.append([epoch, step, score])
        improved = score > best
        if improved:
            best, best_dev, best_epoch, bad_epochs = score, dev_scores, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            net.save(out_dir, {"dev_scores": dev_scores, "epoch": epoch})  # best so far, on disk, atomic
        else:
            bad_epochs += 1
        if plots is not None:
            _write_tsv(plots / "train.tsv", ["epoch", "step", "loss"], train_rows)
            _write_tsv(plots / "dev.tsv", ["epoch", "step", metric], dev_rows)
        if progress:
            log(f"epoch {epoch}: train loss {total / n_seen:.4f}  dev {metric} {score:.4f}"
                + ("  (best)" if improved else ""))
        if bad_epochs >= cfg.patience:
            break
        if cfg.max_minutes is not None and time.time() - start > 60 * cfg.max_minutes:
            if progress:
                log(f"stopping: time budget of {cfg.max_minutes} minutes used")
            break
    if best_state is None:
        raise PipelineError(f"the dev {metric} was never a number ({score}); nothing was saved")
    net.load_state_dict(best_state)  # the dev scores of these weights are best_dev
    result = {"task": cfg.task, "inputs": cfg.inputs, "seed": cfg.seed, "labels": labels, "data": counts,
              "epochs_run": len(history), "best_epoch": best_epoch, "dev": best_dev, "history": history}
    if net.features.mix is not None:
        result["scalar_mix"] = {"weights": [round(w, 4) for w in torch.softmax(net.features.mix.scalars.detach(), 0).tolist()],
                                "gamma": round(float(net.features.mix.gamma.detach()), 4)}
    if test is not None:
        result["test_predictions"] = net.predict(test.sentences)
        result["test"] = net.scores(test, result["test_predictions"])
        result["test_targets"] = test.targets
    result["seconds"] = round(time.time() - start, 1)
    net.save(out_dir, {"dev_scores": best_dev, "test_scores": result.get("test"), "epoch": best_epoch})
    return result


def write_outputs(result: dict, metrics: str | Path | None = None, plots_dir: str | Path | None = None) -> dict:
    """Metrics JSON (scores, no predictions) and, for a classifier, the confusion matrix of the test
    split (the dev split without one) as a DVC plot: rows of ``{"actual", "predicted"}``."""
    from pipeline.io import write_json_atomic

    summary = {k: v for k, v in result.items() if k not in ("test_predictions", "test_targets")}
    if metrics:
        write_json_atomic(metrics, summary)
    if plots_dir and result["task"] == "classify":
        split = "test" if "test" in result else "dev"
        scores = result[split]
        rows = [{"actual": a, "predicted": p} for i, a in enumerate(scores["labels"])
                for j, p in enumerate(scores["labels"]) for _ in range(scores["confusion"][i][j])]
        write_json_atomic(Path(plots_dir) / "confusion.json", rows)
    return summary
