import numpy as np
import pytest
import torch

from pipeline.data.batching import IGNORE, BucketBatcher, make_batch
from pipeline.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from pipeline.errors import PipelineError


def _lengths(n=500, seed=1):
    return np.random.default_rng(seed).integers(1, 40, size=n)


def test_every_sentence_once_and_budget_respected():
    lengths = _lengths()
    batcher = BucketBatcher(lengths, max_tokens=200, seed=3)
    for epoch in range(3):
        batches = batcher.batches(epoch)
        flat = np.concatenate(batches)
        assert sorted(flat.tolist()) == list(range(len(lengths)))
        for b in batches:
            assert len(b) * (lengths[b].max() + 2) <= 200


def test_batches_are_length_buckets_and_seeded():
    lengths = _lengths()
    batcher = BucketBatcher(lengths, max_tokens=300, seed=3)
    a, b = batcher.batches(0), batcher.batches(0)
    assert all((x == y).all() for x, y in zip(a, b))  # same seed + epoch → same batches
    c = batcher.batches(1)
    assert any(len(x) != len(y) or (x != y).any() for x, y in zip(a, c))  # new epoch → new order
    spread = [int(lengths[x].max() - lengths[x].min()) for x in a]
    assert np.median(spread) <= 1  # sorted by length: batches are nearly uniform


def test_budget_smaller_than_a_sentence_is_an_error():
    with pytest.raises(PipelineError, match="max_tokens=10 is smaller"):
        BucketBatcher(np.array([3, 20]), max_tokens=10)


def test_make_batch_masks_and_shifted_targets():
    V = 10
    sents = [np.array([5, 6, 7]), np.array([8, 12])]  # 12 is an out-of-vocabulary type id
    batch = make_batch(sents, vocab_size=V)
    assert batch.type_ids.tolist() == [[BOS_ID, 5, 6, 7, EOS_ID], [BOS_ID, 8, 12, EOS_ID, PAD_ID]]
    assert batch.mask.tolist() == [[True] * 5, [True] * 4 + [False]]
    I = IGNORE
    assert batch.fwd_targets.tolist() == [[5, 6, 7, EOS_ID, I], [8, UNK_ID, EOS_ID, I, I]]
    assert batch.bwd_targets.tolist() == [[I, BOS_ID, 5, 6, 7], [I, BOS_ID, 8, UNK_ID, I]]
    assert batch.n_targets == 4 + 3
    # targets exist only on real tokens: padding never contributes
    assert not (batch.fwd_targets[~batch.mask] != I).any()
    assert not (batch.bwd_targets[~batch.mask] != I).any()
    assert batch.type_ids.dtype == torch.int64


def test_make_batch_targets_are_shifted_inputs_on_random_data():
    rng = np.random.default_rng(0)
    sents = [rng.integers(4, 50, size=rng.integers(1, 12)) for _ in range(16)]
    batch = make_batch(sents, vocab_size=100)
    for b, s in enumerate(sents):
        n = len(s)
        row = batch.type_ids[b]
        assert batch.mask[b].sum() == n + 2
        assert (batch.fwd_targets[b, : n + 1] == row[1 : n + 2]).all()
        assert (batch.bwd_targets[b, 1 : n + 2] == row[: n + 1]).all()
