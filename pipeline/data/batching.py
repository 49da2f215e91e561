"""Length-bucketed batches under a token budget, with forward and backward LM targets.

Batching (one epoch)::

    sentences sorted by length, ties in a seeded random order
    ┌──────┬──────┬──────┬──────┬───────┬───────┬─────┐
    │ len3 │ len3 │ len4 │ len4 │ len7  │ len9  │ ... │
    └──────┴──────┴──────┴──────┴───────┴───────┴─────┘
     └── batch 0 ───────────┘ └─ batch 1 ─┘
    cut greedily so that rows × (longest + 2) ≤ max_tokens   (+2: <S> and </S>)
    then the order of the batches is shuffled with (seed, epoch)

One batch (B sentences, T = longest + 2)::

    type_ids     <S>  w1   w2   w3  </S>  <PAD>
    mask          1    1    1    1    1     0
    fwd_targets  w1   w2   w3  </S> -100  -100     forward LM at t predicts token t+1
    bwd_targets -100  <S>  w1   w2   w3   -100     backward LM at t predicts token t-1

Targets are softmax (vocabulary) ids: an out-of-vocabulary type maps to ``<UNK>``; ``-100``
(PyTorch's ``ignore_index``) marks positions without a target, so padding never adds to a loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from pipeline.errors import PipelineError

IGNORE = -100


@dataclass
class Batch:
    type_ids: torch.Tensor  # (B, T) int64 token type ids, <S>/</S> added, PAD_ID after the end
    mask: torch.Tensor  # (B, T) bool, True on real tokens (including <S> and </S>)
    fwd_targets: torch.Tensor  # (B, T) int64 vocabulary ids of token t+1, IGNORE where none
    bwd_targets: torch.Tensor  # (B, T) int64 vocabulary ids of token t-1, IGNORE where none
    sentence_ids: np.ndarray  # (B,) indices of the sentences in their split

    @property
    def n_targets(self) -> int:
        """Predicted tokens per direction (each sentence of n words has n + 1)."""
        return int((self.fwd_targets != IGNORE).sum())


def make_batch(
    sentences: Sequence[np.ndarray], vocab_size: int, sentence_ids: Sequence[int] | np.ndarray | None = None
) -> Batch:
    """Pad ``sentences`` (arrays of type ids without boundary tokens) into a :class:`Batch`."""
    B = len(sentences)
    T = max(len(s) for s in sentences) + 2
    type_ids = np.full((B, T), PAD_ID, dtype=np.int64)
    mask = np.zeros((B, T), dtype=bool)
    fwd = np.full((B, T), IGNORE, dtype=np.int64)
    bwd = np.full((B, T), IGNORE, dtype=np.int64)
    for b, s in enumerate(sentences):
        n = len(s)
        row = np.concatenate([[BOS_ID], s, [EOS_ID]])  # (n + 2,)
        type_ids[b, : n + 2] = row
        mask[b, : n + 2] = True
        tgt = np.where(row < vocab_size, row, UNK_ID)
        fwd[b, : n + 1] = tgt[1:]
        bwd[b, 1 : n + 2] = tgt[:-1]
    ids = np.arange(B) if sentence_ids is None else np.asarray(sentence_ids)
    return Batch(torch.from_numpy(type_ids), torch.from_numpy(mask), torch.from_numpy(fwd), torch.from_numpy(bwd), ids)


def cut_sorted(order, lengths, max_tokens: int | None = None, max_rows: int | None = None) -> list[list[int]]:
    """Cut ``order`` (sentence indices sorted by length) greedily into consecutive batches of at
    most ``max_rows`` rows with rows × (longest + 2) ≤ ``max_tokens`` (+2: <S> and </S>).
    A sentence longer than the budget alone gets a batch of its own. The one length-batching rule
    of the project: pretraining, evaluation, embedding and the task models all cut with it."""
    batches: list[list[int]] = []
    batch: list[int] = []
    for i in order:
        padded = int(lengths[i]) + 2  # the longest so far: ``order`` is sorted
        rows = len(batch) + 1
        if batch and (
            (max_rows is not None and rows > max_rows) or (max_tokens is not None and rows * padded > max_tokens)
        ):
            batches.append(batch)
            batch = []
        batch.append(int(i))
    if batch:
        batches.append(batch)
    return batches


class BucketBatcher:
    """Cuts a split's sentences into length-bucketed batches of at most ``max_tokens`` padded tokens."""

    def __init__(self, lengths: np.ndarray, max_tokens: int, seed: int = 0, shuffle: bool = True):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if len(self.lengths) == 0:
            raise PipelineError("cannot batch an empty split")
        longest = int(self.lengths.max()) + 2
        if max_tokens < longest:
            raise PipelineError(
                f"max_tokens={max_tokens} is smaller than the longest sentence plus <S> and </S> ({longest})"
            )
        self.max_tokens = max_tokens
        self.seed = seed
        self.shuffle = shuffle

    def batches(self, epoch: int = 0) -> list[np.ndarray]:
        """Sentence-index arrays, one per batch; every sentence appears exactly once."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            tiebreak = rng.permutation(len(self.lengths))
            order = np.lexsort((tiebreak, self.lengths))  # by length, then a random tie order
        else:
            order = np.argsort(self.lengths, kind="stable")
        out = [np.asarray(b, dtype=np.int64) for b in cut_sorted(order, self.lengths, max_tokens=self.max_tokens)]
        if self.shuffle:
            perm = rng.permutation(len(out))
            out = [out[i] for i in perm]
        return out
