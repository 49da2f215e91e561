"""Perplexity of a biLM on a prepared split: forward, backward and average (exact softmax;
the formula is :func:`pipeline.lm.perplexities`)."""

from __future__ import annotations

import torch

from pipeline.bilm.model import BiLM, batch_inputs, load_bilm
from pipeline.data.batching import BucketBatcher, make_batch
from pipeline.data.prepared import PreparedData
from pipeline.lm import perplexities
from pipeline.progress import progress_bar


@torch.no_grad()
def prepared_lm_sums(
    model: BiLM,
    data: PreparedData,
    split: str,
    max_tokens: int,
    rank: int = 0,
    world: int = 1,
    max_sentences: int | None = None,
    device="cpu",
    progress: bool = False,
) -> torch.Tensor:
    """Summed (forward NLL, backward NLL, targets) over this process's share of the split's batches
    (``progress``: with a bar)."""
    sp = data.split(split)
    lengths = sp.lengths[:max_sentences] if max_sentences else sp.lengths
    batches = BucketBatcher(lengths, max(max_tokens, int(lengths.max()) + 2), shuffle=False).batches()
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for idx in progress_bar(None, f"perplexity ({split})", "batch", progress, iterable=batches[rank::world]):
        b = make_batch([sp.sentence(int(i)) for i in idx], len(data.vocab), idx)
        chars, index = batch_inputs(b.type_ids, data.char_tensor)
        out = model(chars.to(device), index.to(device), b.mask.to(device))
        f, bw = model.lm_nll(out, b.fwd_targets.to(device), b.bwd_targets.to(device))
        sums += torch.tensor([f.item(), bw.item(), b.n_targets], dtype=torch.float64)
    model.train(was_training)
    return sums


def evaluate_saved(model_dir, prepared_dir, split: str = "test", max_tokens: int = 8192, progress: bool = True) -> dict:
    """Perplexities of a saved biLM (``models/pretrain/best``) on a split of the prepared data."""
    model, config = load_bilm(model_dir)
    data = PreparedData(prepared_dir)
    data.check_trained_on(model_dir, config, "pass the prepared data it was trained on (--prepared)")
    out = perplexities(*prepared_lm_sums(model, data, split, max_tokens, progress=progress).tolist())
    return {f"{split}_{k}": v for k, v in out.items()}
