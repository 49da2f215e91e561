"""The biLM's shared softmax head: full (through :class:`LinearNLL`, which never keeps the (N, V)
logits), sampled (training only, Jean et al. 2015 as in ELMo; evaluation is exact) and adaptive.
Targets equal to ``IGNORE`` (-100, padding) never reach a loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.batching import IGNORE


def log_uniform_probs(V: int) -> torch.Tensor:
    """Zipfian sampling distribution over ids sorted by frequency: P(k) = log((k+2)/(k+1)) / log(V+1)."""
    k = torch.arange(V, dtype=torch.float64)
    return (torch.log1p(1.0 / (k + 1)) / math.log(V + 1)).float()


def sample_unique(probs: torch.Tensor, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
    """``n`` distinct ids drawn from ``probs`` with replacement until distinct; returns (ids, draws)."""
    V = probs.numel()
    n = min(n, V)
    seen: list[int] = []
    chosen: set[int] = set()
    draws = 0
    while len(seen) < n:
        batch = torch.multinomial(probs, max(2 * (n - len(seen)), 64), replacement=True, generator=generator)
        for i in batch.tolist():
            draws += 1
            if i not in chosen:
                chosen.add(i)
                seen.append(i)
                if len(seen) == n:
                    break
    return torch.tensor(seen, dtype=torch.long), draws


class LinearNLL(torch.autograd.Function):
    """Summed −log softmax(h Wᵀ + b)[y] without keeping the (N, V) logits for autograd.

    Why: with a full softmax the logits are the largest tensors of a step; autograd would write
    them, read them for log-softmax, and read them twice more backwards. Here rows go in chunks
    that stay in cache, the gradient of the logits is formed right away (softmax − one-hot, in
    the compute dtype), and the backward is two large matmuls. Forward: h (N, P) and weight
    (V, P) in the compute dtype, bias (V,) fp32, y (N,) → scalar fp32.

    Sampled softmax: the columns are the sampled classes, ``true`` (N,) fp32 holds each row's true
    logit (an extra column, with its own gradient), and ``y`` is the column that holds the row's
    true class among the samples (an accidental hit, left out) or −1.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, y, true=None):
        N, V = h.shape[0], weight.shape[0]
        grads = h.requires_grad or weight.requires_grad or bias.requires_grad
        d_logits = torch.empty(N, V, dtype=h.dtype, device=h.device) if grads else None
        d_true = torch.empty(N, dtype=torch.float32, device=h.device) if true is not None else None
        d_bias = torch.zeros(V, dtype=torch.float32, device=h.device)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        rows = max(16, (1 << 23) // V)  # ≤ 32 MB of fp32 logits per chunk
        for s in range(0, N, rows):
            logits = (h[s : s + rows] @ weight.T).float().add_(bias)  # (n, V)
            yc = y[s : s + rows, None]
            if true is None:
                t = logits.gather(1, yc)  # (n, 1)
                top = logits.amax(dim=-1, keepdim=True)
            else:
                t = true[s : s + rows, None]
                hit = (yc[:, 0] >= 0).nonzero()[:, 0]  # rows whose true class was also drawn
                logits[hit, yc[hit, 0]] = -math.inf  # an accidental hit is not a negative
                top = torch.maximum(logits.amax(dim=-1, keepdim=True), t)
            p = logits.sub_(top).exp_()  # in place: the logits are not needed again
            p_true = (t - top).exp() if true is not None else None
            norm = p.sum(dim=-1, keepdim=True) + (p_true if p_true is not None else 0)
            total += (norm.log() + top - t).sum().double()  # log-sum-exp − true logit
            if grads:
                p.div_(norm)
                if p_true is None:
                    p.scatter_add_(1, yc, torch.full_like(t, -1.0))  # softmax − one-hot
                elif d_true is not None:
                    d_true[s : s + rows] = (p_true / norm - 1.0)[:, 0]
                d_bias += p.sum(0)
                d_logits[s : s + rows] = p
        if grads:
            ctx.save_for_backward(h, weight, d_logits, d_bias, d_true)
        return total.float()

    @staticmethod
    def backward(ctx, grad):
        h, weight, d_logits, d_bias, d_true = ctx.saved_tensors
        # scale the (N, P) and (V, P) products by the incoming scalar, not the (N, V) logits
        d_t = d_true * grad if d_true is not None else None
        return (d_logits @ weight) * grad, (d_logits.T @ h) * grad, d_bias * grad, None, d_t


def linear_nll(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, y: torch.Tensor, true: torch.Tensor | None = None
) -> torch.Tensor:
    """h (N, P), weight (V, P), bias (V,), y (N,) → summed NLL (fp32), matmuls in the autocast dtype.
    ``true`` (N,): the sampled softmax's true logits (see :class:`LinearNLL`)."""
    dev = h.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
    with torch.autocast(dev, enabled=False):
        return LinearNLL.apply(h.to(dt), weight.to(dt), bias.float(), y, None if true is None else true.float())


class SoftmaxHead(nn.Module):
    sample_probs: torch.Tensor  # a buffer (sampled softmax)

    """Shared output layer. ``nll(h, targets)`` → summed negative log-likelihood over targets != -100.

    ``full``: exact softmax over V. ``sampled`` (training only): ELMo/Jean et al. 2015 sampled
    softmax with a log-uniform sampler over frequency-sorted ids, ``n_samples`` distinct negatives
    shared by the batch, accidental hits removed and each logit corrected by the log of its
    expected count (TF's ``sampled_softmax_loss`` with ``unique=True``); evaluation always uses
    the exact full softmax. ``adaptive``: ``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017),
    exact both in training and evaluation.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, fused: bool = True):
        super().__init__()
        self.kind = cfg.softmax
        self.V = vocab_size
        P = cfg.projection_dim
        if self.kind == "adaptive":
            cutoffs = cfg.adaptive_cutoffs or sorted({max(2, vocab_size // 20), max(3, vocab_size // 4)})
            cutoffs = [c for c in cutoffs if 0 < c < vocab_size]
            self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(P, vocab_size, cutoffs, div_value=4.0)
        else:
            self.weight = nn.Parameter(torch.empty(vocab_size, P))
            self.bias = nn.Parameter(torch.zeros(vocab_size))
            nn.init.normal_(self.weight, std=1.0 / math.sqrt(P))
            self.n_samples = cfg.n_samples
            self.register_buffer("sample_probs", log_uniform_probs(vocab_size), persistent=False)
        self.fused = fused  # the full softmax through LinearNLL (Kernels.fused_softmax)
        self.generator: torch.Generator | None = None  # set by the trainer for reproducible sampling

    def nll(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """h (B, T, P), targets (B, T) → scalar sum of −log p(target) over real targets."""
        keep = targets != IGNORE
        h, y = h[keep], targets[keep]  # (N, P), (N,)
        if y.numel() == 0:
            return h.sum() * 0.0
        if self.kind == "adaptive":
            dev = h.device.type
            if torch.is_autocast_enabled(dev):  # the module mixes h's dtype with its layers' outputs
                h = h.to(torch.get_autocast_dtype(dev))
            return self.adaptive(h, y).loss * y.numel()  # the module's loss is the mean
        if self.kind == "sampled" and self.training and self.n_samples < self.V:
            return self._sampled_nll(h, y)
        if self.fused:
            return linear_nll(h, self.weight, self.bias, y)
        return Fn.cross_entropy(Fn.linear(h, self.weight, self.bias).float(), y, reduction="sum")

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        """(…, P) → (…, V) exact log-probabilities (for evaluation and sampling)."""
        if self.kind == "adaptive":
            return self.adaptive.log_prob(h.reshape(-1, h.shape[-1])).view(*h.shape[:-1], self.V)
        return torch.log_softmax(Fn.linear(h, self.weight, self.bias).float(), dim=-1)

    def _sampled_nll(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = self.generator
        probs = self.sample_probs
        cpu_gen = gen if gen is None or gen.device.type == "cpu" else None
        samples, draws = sample_unique(probs.cpu(), self.n_samples, cpu_gen)
        samples = samples.to(h.device)

        def log_expected(ids):  # log of the expected count of a class in ``draws`` draws
            p = probs[ids].double()
            return torch.log(-torch.expm1(draws * torch.log1p(-p))).float()

        true_logit = (h * self.weight[y]).sum(-1) + self.bias[y] - log_expected(y)  # (N,)
        if self.fused:  # the same loss through LinearNLL: no (N, S) logits kept
            column = torch.full((self.V,), -1, dtype=torch.long, device=h.device)
            column[samples] = torch.arange(len(samples), device=h.device)  # class → its column, or −1
            b_s = self.bias[samples] - log_expected(samples)
            return linear_nll(h, self.weight[samples], b_s, column[y], true_logit)
        samp_logit = h @ self.weight[samples].T + self.bias[samples] - log_expected(samples)  # (N, S)
        samp_logit = samp_logit.masked_fill(samples[None, :] == y[:, None], float("-inf"))  # accidental hits
        logits = torch.cat([true_logit[:, None], samp_logit], dim=1).float()
        return Fn.cross_entropy(logits, torch.zeros_like(y), reduction="sum")
