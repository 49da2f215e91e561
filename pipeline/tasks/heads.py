"""Downstream heads over per-token input vectors (``[word2vec ; ELMo mix]``, built by the caller).

``Tagger``: BiLSTM → linear tag scores → CRF (Lample et al. 2016; ELMo §4 NER).
``Classifier``: BiLSTM → max- or attention-pooling over real tokens → linear (ELMo §4 SST).
Inputs are (B, T, D) float vectors and a mask (B, T), True on real tokens, each row a prefix.
``extra`` (B, T, X), when given (``extra_dim`` X > 0), is concatenated to the BiLSTM's output before
the tag scores or the pooling: ELMo at the task RNN's output (ELMo §3.3).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.tasks.crf import CRF


class TaskBiLSTM(nn.Module):
    """The task's own BiLSTM over its input vectors: (B, T, D) → (B, T, 2H).
    Padding is skipped by packing, so it never reaches real positions."""

    def __init__(self, input_dim: int, hidden: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu()
        packed = pack_padded_sequence(self.dropout(x), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.dropout(out)


def with_extra(h: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return h if extra is None else torch.cat([h, extra], dim=-1)


class Tagger(nn.Module):
    def __init__(
        self,
        input_dim: int,
        n_tags: int,
        hidden: int = 100,
        dropout: float = 0.5,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
        extra_dim: int = 0,
    ):
        super().__init__()
        self.bilstm = TaskBiLSTM(input_dim, hidden, dropout)
        self.proj = nn.Linear(2 * hidden + extra_dim, n_tags)
        self.crf = CRF(n_tags, allowed, allowed_start)

    def emissions(self, x: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), (B, T), extra (B, T, X) or None → (B, T, K) tag scores."""
        return self.proj(with_extra(self.bilstm(x, mask), extra))  # (B, T, K)

    def loss(
        self, x: torch.Tensor, mask: torch.Tensor, tags: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean negative log-likelihood per sentence."""
        return self.crf.nll(self.emissions(x, mask, extra), tags, mask) / x.shape[0]

    def decode(self, x: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> list[list[int]]:
        return self.crf.viterbi(self.emissions(x, mask, extra), mask)


class Classifier(nn.Module):
    def __init__(
        self,
        input_dim: int,
        n_classes: int,
        hidden: int = 150,
        dropout: float = 0.5,
        pooling: Literal["max", "attention"] = "max",
        extra_dim: int = 0,
    ):
        super().__init__()
        self.bilstm = TaskBiLSTM(input_dim, hidden, dropout)
        self.pooling = pooling
        self.attn = nn.Linear(2 * hidden + extra_dim, 1) if pooling == "attention" else None
        self.out = nn.Linear(2 * hidden + extra_dim, n_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), (B, T), extra (B, T, X) or None → (B, C) class logits."""
        h = with_extra(self.bilstm(x, mask), extra)  # (B, T, 2H + X)
        if self.pooling == "max":
            pooled = h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        else:
            assert self.attn is not None  # made for pooling "attention"
            w = torch.softmax(self.attn(h).squeeze(-1).masked_fill(~mask, float("-inf")), dim=1)  # (B, T)
            pooled = (w[..., None] * h).sum(1)
        return self.out(pooled)
