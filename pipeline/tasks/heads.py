"""Downstream heads over per-token input vectors (``[word2vec ; ELMo mix]``, built by the caller).

``Tagger``: BiLSTM → linear tag scores → CRF (Lample et al. 2016; ELMo §4 NER).
``Classifier``: BiLSTM → max- or attention-pooling over real tokens → linear (ELMo §4 SST).
``PairClassifier``: both texts pooled so, then matching features → a small MLP (NLI, paraphrase).
``ScoreHead``: one output read as a number (regression), trained on standardised targets.
``LabelSetHead``: K independent label logits and a decision threshold per label (multi-label).
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
    Padding is skipped by packing, so it never reaches real positions; under ``torch.export`` (the
    ONNX export), where packed sequences do not trace, the same LSTM runs as a scan over time."""

    def __init__(self, input_dim: int, hidden: int, dropout: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_exporting():
            from pipeline.bilm.exported import bilstm_scan

            return bilstm_scan(self.lstm, x, mask.sum(1))  # eval mode: no dropout
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

    @property
    def pooled_dim(self) -> int:
        return self.out.in_features

    def pool(self, x: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), (B, T), extra (B, T, X) or None → (B, 2H + X) sentence vectors."""
        h = with_extra(self.bilstm(x, mask), extra)  # (B, T, 2H + X)
        if self.pooling == "max":
            return h.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        assert self.attn is not None  # made for pooling "attention"
        w = torch.softmax(self.attn(h).squeeze(-1).masked_fill(~mask, float("-inf")), dim=1)  # (B, T)
        return (w[..., None] * h).sum(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), (B, T), extra (B, T, X) or None → (B, C) class logits."""
        return self.out(self.pool(x, mask, extra))


class PairClassifier(nn.Module):
    """Two texts → (B, C) logits: each side through the same BiLSTM and pooling (u, v), then
    ``[u ; v ; |u − v| ; u ⊙ v]`` → a ReLU layer → C outputs (InferSent, Conneau et al. 2017: the
    matching features let a linear layer see agreement without cross-attention)."""

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
        # why no dropout in the sides (as InferSent): independent masks on the two sides make
        # |u - v| mostly mask noise (measured: at 0.5 the model could not fit 64 pairs of a toy
        # task; with dropout only in the matching layers it fits them); the matching vector gets it
        self.side = Classifier(input_dim, 1, hidden, 0.0, pooling, extra_dim)
        d = self.side.pooled_dim  # the side's own `out` layer is unused
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * d, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, a: tuple, b: tuple) -> torch.Tensor:
        """``a``, ``b``: each side's (x (B, T, D), mask (B, T), extra or None) → (B, C)."""
        u, v = self.side.pool(*a), self.side.pool(*b)  # (B, d) each
        return self.out(self.mlp(torch.cat([u, v, (u - v).abs(), u * v], dim=-1)))


class ScoreHead(nn.Module):
    """A head with one output read as a number in the training targets' units: it learns targets
    standardised by the training mean (``center``) and deviation (``scale``), so any scale of
    score trains alike; ``low``/``high``: the training range (for clipping)."""

    center: torch.Tensor  # buffers: saved with the weights
    scale: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, head: nn.Module):
        super().__init__()
        self.head = head
        for name in ("center", "low", "high"):
            self.register_buffer(name, torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def fit_scale(self, targets: list[float]) -> None:
        t = torch.tensor(targets, dtype=torch.float64)
        std = float(t.std()) if len(targets) > 1 else 0.0
        self.center.fill_(float(t.mean()))
        self.scale.fill_(std if std > 0 else 1.0)
        self.low.fill_(float(t.min()))
        self.high.fill_(float(t.max()))

    def forward(self, *inputs) -> torch.Tensor:
        """The head's inputs → (B,) standardised scores."""
        return self.head(*inputs).squeeze(-1)

    def standardised(self, targets: list[float], device) -> torch.Tensor:
        return (torch.tensor(targets, device=device) - self.center) / self.scale

    def scores(self, *inputs, clip: bool = False) -> torch.Tensor:
        """(B,) scores in the targets' units (clipped to the training range with ``clip``)."""
        y = self(*inputs) * self.scale + self.center
        return y.clamp(self.low, self.high) if clip else y


class LabelSetHead(nn.Module):
    """A head whose K outputs are independent label logits (multi-label), with a decision threshold
    per label (``thresholds``, 0.5 until picked on dev after training; saved with the weights)."""

    thresholds: torch.Tensor  # buffer

    def __init__(self, head: nn.Module, n_labels: int):
        super().__init__()
        self.head = head
        self.register_buffer("thresholds", torch.full((n_labels,), 0.5))

    def forward(self, *inputs) -> torch.Tensor:
        """The head's inputs → (B, K) label logits."""
        return self.head(*inputs)
