"""The ELMo bidirectional language model, top to bottom (Peters et al. 2018; Kim et al. 2016).

::

    char ids of the distinct tokens (U, C)
      └─ CharCNN: embed (U, C, E) → conv widths w=1..7 → max over positions → relu → (U, F)
         └─ Highway × n: g*x + (1-g)*relu(W x)                                   (U, F)
            └─ projection                                                        (U, P)
               └─ gather back to the sentence positions                          (B, T, P) = layer 0
                  ├─ forward stack  (LSTM: L layers, cell H, projection P, residual)  → (B, T, P) each
                  └─ backward stack (same, on each sentence reversed)                  → (B, T, P) each
                     └─ shared softmax: forward predicts token t+1, backward token t-1

Shapes: B batch, T tokens per sentence (with <S> and </S>), C chars per token, E char embedding,
F total filters, P projection, H LSTM cell, L layers, V vocabulary, U distinct tokens in a batch.
Bodies (``model.body``): ``lstm`` (ELMo), ``gru`` and ``tcn`` behind the same interface.
Mask convention: ``mask`` (B, T) is True on real tokens; positions after a sentence's end are
padding and never influence real positions (every body is causal, and the backward stack reads
each sentence reversed within its own length), and targets there are ``-100`` so they never reach a loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.batching import IGNORE
from pipeline.data.chars import N_CHAR_IDS, PAD_CHAR
from pipeline.errors import PipelineError

# PyTorch notes once that oneDNN lacks projected LSTMs and uses its own C++ kernel: expected here.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


# --- token encoder ---------------------------------------------------------------------------


class CharCNN(nn.Module):
    """(U, C) char ids → (U, F): max-pooled convolutions over each token's characters."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(N_CHAR_IDS, cfg.char_embed_dim)
        self.convs = nn.ModuleList(nn.Conv1d(cfg.char_embed_dim, n, w) for w, n in cfg.filters)
        self.max_width = max(w for w, _ in cfg.filters)
        self.activation = torch.tanh if cfg.char_activation == "tanh" else torch.relu

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        x = self.embed(chars).transpose(1, 2)  # (U, E, C)
        # max over positions, then the activation (as bilm-tf and AllenNLP): (U, n) per width
        pooled = [self.activation(conv(x).amax(dim=-1)) for conv in self.convs]
        return torch.cat(pooled, dim=-1)  # (U, F)


class Highway(nn.Module):
    """(…, F) → (…, F): ``g * x + (1 - g) * relu(W x)`` per layer (Srivastava et al. 2015)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        linears = [nn.Linear(dim, 2 * dim) for _ in range(n_layers)]
        for layer in linears:
            # why: gate bias 1 → g ≈ 0.73, so each layer starts by mostly carrying its input
            nn.init.zeros_(layer.bias[:dim])
            nn.init.ones_(layer.bias[dim:])
        self.layers = nn.ModuleList(linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            h, g = layer(x).chunk(2, dim=-1)
            g = torch.sigmoid(g)
            x = g * x + (1 - g) * torch.relu(h)
        return x


class TokenEncoder(nn.Module):
    """Char CNN → highway → projection. (U, C) char ids → (U, P) token vectors."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cnn = CharCNN(cfg)
        self.highway = Highway(cfg.n_filters, cfg.n_highway)
        self.proj = nn.Linear(cfg.n_filters, cfg.projection_dim)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        return self.proj(self.highway(self.cnn(chars)))


def trim_chars(chars: torch.Tensor, max_width: int) -> torch.Tensor:
    """Keep only the character columns a batch needs, without changing the CNN's output.

    Columns past the longest token's end-of-word are all padding. Every convolution window that
    touches a real character lies within ``longest + max_width - 1`` columns, and windows made only
    of padding all give the same value, so keeping ``longest + max_width`` columns (one all-padding
    window for every width) gives exactly the max-pool of the full ``C`` columns.
    """
    C = chars.shape[1]
    real = (chars != PAD_CHAR).any(dim=0)  # (C,)
    longest = int(real.nonzero().max()) + 1 if real.any() else 0
    keep = min(C, longest + max_width)
    return chars[:, :keep]


# --- sequence bodies: one direction's stack, (B, T, P) → list of (B, T, P) ------------------------


class LSTMLayer(nn.Module):
    """One LSTM layer with cell H and projection P: (B, T, P) → (B, T, P), zero initial state.

    Holds the weights of PyTorch's ``nn.LSTM(proj_size=P)`` (so saved names stay). Training and
    inference run them through :func:`scan_stacks`; ``forward`` here is PyTorch's own kernel, kept
    for the straightforward baseline in bench/ and for generation.
    """

    def __init__(self, dim: int, cell: int, cell_clip: float | None, proj_clip: float | None):
        super().__init__()
        self.lstm = nn.LSTM(dim, cell, batch_first=True, proj_size=dim)
        self.cell_clip, self.proj_clip = cell_clip, proj_clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cell_clip is None and self.proj_clip is None:
            return self.lstm(x)[0]
        return lstmp_scan(x[None], [self.lstm], self.cell_clip, self.proj_clip)[0]


def lstmp_steps(gx, w_hh, w_hr, cell_clip, proj_clip, h=None, c=None):
    """The projected-LSTM recurrence: gx (D, T, B, 4H) fp32, w_hh (D, P, 4H), w_hr (D, H, P), initial
    h (D, B, P) and c (D, B, H) (zeros when None) → T + 1 h's (the initial one first), T c's, T
    gate activations (D, B, 4H). Gate order i, f, g, o (nn.LSTM); c then h clipped when set."""
    D, T, B, G = gx.shape
    H, dt = G // 4, w_hh.dtype
    h = gx.new_zeros(D, B, w_hh.shape[1], dtype=dt) if h is None else h.to(dt)
    c = gx.new_zeros(D, B, H) if c is None else c.float()
    hs, cs, acts = [h], [], []
    for t in range(T):
        gates = gx[:, t] + torch.bmm(h, w_hh)  # (D, B, 4H) fp32
        a = torch.sigmoid(gates)
        a[..., 2 * H : 3 * H] = torch.tanh(gates[..., 2 * H : 3 * H])
        i, f, g, o = a.chunk(4, dim=-1)
        c = torch.addcmul(f * c, i, g)
        if cell_clip is not None:
            c = c.clamp(-cell_clip, cell_clip)
        h = torch.bmm((o * torch.tanh(c)).to(dt), w_hr)  # (D, B, P)
        if proj_clip is not None:
            h = h.clamp(-proj_clip, proj_clip)
        hs.append(h)
        cs.append(c)
        acts.append(a)
    return hs, cs, acts


class LSTMPScan(torch.autograd.Function):
    """The projected-LSTM recurrence of D independent layers at once, with a hand-written backward.

    Why by hand: PyTorch has no fused CPU kernel for ``proj_size`` LSTMs, and autograd through a
    step loop does six small matmuls per step. Here each step does two (forward) and two
    (backward); the weight gradients are one large matmul per weight after the loop, and every
    matmul runs in the autocast dtype (bf16 on CPU/GPU) while gates and cells stay fp32.

    forward: gx (D, T, B, 4H) fp32 input products plus biases (gate order i, f, g, o as nn.LSTM),
    w_hh (D, P, 4H), w_hr (D, H, P) in the compute dtype → h (D, T, B, P).
    """

    @staticmethod
    def forward(ctx, gx, w_hh, w_hr, cell_clip, proj_clip):
        hs, cs, acts = lstmp_steps(gx, w_hh, w_hr, cell_clip, proj_clip)
        out = torch.stack(hs[1:], dim=1)  # (D, T, B, P)
        if any(ctx.needs_input_grad[:3]):
            ctx.save_for_backward(torch.stack(hs[:-1], 1), torch.stack(cs, 1), torch.stack(acts, 1), out, w_hh, w_hr)
            ctx.clips = (cell_clip, proj_clip)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        h_prev, c, a, out, w_hh, w_hr = ctx.saved_tensors  # (D,T,B,P) (D,T,B,H) (D,T,B,4H) (D,T,B,P)
        cell_clip, proj_clip = ctx.clips
        D, T, B, G = a.shape
        H, dt = G // 4, w_hh.dtype
        i, f, g, o = a.chunk(4, dim=-1)
        c_prev = torch.cat([c.new_zeros(D, 1, B, H), c[:, :-1]], dim=1)
        tc = torch.tanh(c)
        # the per-step derivative factors, for all steps at once
        k_c = o * (1 - tc * tc)  # ∂h-path into c: dc += dm * k_c
        k_ifg = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=-1).view(D, T, B, 3, H)
        k_o = tc * o * (1 - o)
        h_ok = (out.abs() < proj_clip).float() if proj_clip is not None else None
        c_ok = (c.abs() < cell_clip).float() if cell_clip is not None else None
        w_hh_t, w_hr_t = w_hh.transpose(1, 2), w_hr.transpose(1, 2)
        d_gates, d_h = torch.empty_like(a), torch.empty_like(grad_out)
        dh_next = grad_out.new_zeros(D, B, grad_out.shape[-1])
        dc = c.new_zeros(D, B, H)
        for t in range(T - 1, -1, -1):
            dh = grad_out[:, t] + dh_next  # ∂/∂h_t (clipped)
            if h_ok is not None:
                dh = dh * h_ok[:, t]
            d_h[:, t] = dh
            dm = torch.bmm(dh.to(dt), w_hr_t).float()  # (D, B, H): ∂/∂(o * tanh c)
            dc = torch.addcmul(dc, dm, k_c[:, t])
            if c_ok is not None:
                dc = dc * c_ok[:, t]
            dg = d_gates[:, t]
            dg.view(D, B, 4, H)[:, :, :3] = dc[:, :, None] * k_ifg[:, t]
            dg[..., 3 * H :] = dm * k_o[:, t]
            dc = dc * f[:, t]
            dh_next = torch.bmm(dg.to(dt), w_hh_t)
        m = o * tc  # (D, T, B, H)
        d_w_hh = torch.bmm(h_prev.reshape(D, T * B, -1).transpose(1, 2), d_gates.reshape(D, T * B, G).to(dt))
        d_w_hr = torch.bmm(m.reshape(D, T * B, H).to(dt).transpose(1, 2), d_h.reshape(D, T * B, -1).to(dt))
        return d_gates, d_w_hh, d_w_hr, None, None


def lstmp_scan(
    x: torch.Tensor, lstms: list[nn.LSTM], cell_clip: float | None = None, proj_clip: float | None = None
) -> torch.Tensor:
    """D projected-LSTM layers, each on its own input: x (D, B, T, P) → (D, B, T, P).

    Input products of every step in one matmul before the recurrence; the recurrence in
    :class:`LSTMPScan`. Under autocast the matmuls run in its dtype (fp32 master weights).
    """
    D, B, T, P = x.shape
    dev = x.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    with torch.autocast(dev, enabled=False):
        gx, w_hh, w_hr = _scan_inputs(x, lstms, dt)
        out = LSTMPScan.apply(gx, w_hh, w_hr, cell_clip, proj_clip)  # (D, T, B, P)
        return out.transpose(1, 2).to(x.dtype)


def _scan_inputs(x: torch.Tensor, lstms: list[nn.LSTM], dt: torch.dtype):
    """x (D, B, T, P) → gx (D, T, B, 4H) fp32 input products plus biases, w_hh (D, P, 4H), w_hr (D, H, P) in dt."""
    D, B, T, P = x.shape

    def stacked(name: str) -> torch.Tensor:
        return torch.stack([m.get_parameter(name) for m in lstms])

    w_ih = stacked("weight_ih_l0").transpose(1, 2).to(dt)  # (D, P, 4H)
    # each direction's two biases added before stacking: stacking each first changed the two-process
    # run's gradients against the one-process run (test_two_processes_match_one_with_the_same_global_batch)
    bias = torch.stack([m.get_parameter("bias_ih_l0") + m.get_parameter("bias_hh_l0") for m in lstms])
    bias = bias[:, None, :]  # (D, 1, 4H)
    w_hh = stacked("weight_hh_l0").transpose(1, 2).to(dt)  # (D, P, 4H)
    w_hr = stacked("weight_hr_l0").transpose(1, 2).to(dt)  # (D, H, P)
    xt = x.transpose(1, 2).reshape(D, T * B, P).to(dt)  # time-major: each step's rows are contiguous
    gx = (torch.bmm(xt, w_ih).float() + bias).view(D, T, B, -1)  # (D, T, B, 4H)
    return gx, w_hh, w_hr


def lstm_layer_from_state(x: torch.Tensor, layer: LSTMLayer, h0: torch.Tensor, c0: torch.Tensor):
    """One LSTM layer on unpadded x (B, T, P) from the state h0 (B, P), c0 (B, H), fp32, no autograd
    → (out (B, T, P), h_T, c_T). Only for replaying a *stateful* biLM (AllenNLP's ``Elmo`` carries
    each row's state to the next batch; the reference activations of bilm-tf fixtures need it):
    our encoder always starts a sentence from zero state, so embeddings are per sentence."""
    with torch.no_grad():
        gx, w_hh, w_hr = _scan_inputs(x[None].float(), [layer.lstm], torch.float32)
        hs, cs, _ = lstmp_steps(gx, w_hh, w_hr, layer.cell_clip, layer.proj_clip, h0[None], c0[None])
        return torch.stack(hs[1:], dim=2)[0], hs[-1][0], cs[-1][0]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of (B, T, …) within its own length; padding stays at the end."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    idx = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class LSTMStack(nn.Module):
    """L layers, dropout on each layer's input, residual connections from the second layer on."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        P, H = cfg.projection_dim, cfg.cell_dim
        self.layers = nn.ModuleList(LSTMLayer(P, H, cfg.cell_clip, cfg.proj_clip) for _ in range(cfg.n_layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.skip = cfg.skip_connections

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, layer in enumerate(self.layers):
            h = layer(self.dropout(x))  # (B, T, P)
            x = h + x if k > 0 and self.skip else h  # residual between LSTM layers (ELMo)
            outs.append(x)
        return outs


class GRUStack(nn.Module):
    """L GRU layers (cell H) each followed by a projection to P; dropout and residuals as LSTMStack."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        P, H = cfg.projection_dim, cfg.cell_dim
        self.grus = nn.ModuleList(nn.GRU(P, H, batch_first=True) for _ in range(cfg.n_layers))
        self.projs = nn.ModuleList(nn.Linear(H, P) for _ in range(cfg.n_layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.skip = cfg.skip_connections

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, (gru, proj) in enumerate(zip(self.grus, self.projs)):
            h = proj(gru(self.dropout(x))[0])  # (B, T, P)
            x = h + x if k > 0 and self.skip else h
            outs.append(x)
        return outs


class TCNBlock(nn.Module):
    """x + conv(H→P, width k)(relu(conv(P→H, width k)(x))), both causal with dilation d: (B, P, T) → (B, P, T)."""

    def __init__(self, P: int, H: int, k: int, d: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Conv1d(P, H, k, dilation=d)
        self.conv2 = nn.Conv1d(H, P, k, dilation=d)
        self.pad = (k - 1) * d  # on the left only: position t sees t, t-d, …, never t+1
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(Fn.pad(x, (self.pad, 0))))
        return x + self.dropout(self.conv2(Fn.pad(self.dropout(h), (self.pad, 0))))


class TCNStack(nn.Module):
    """n_layers causal residual blocks with dilations 1, 2, 4, … (Bai et al. 2018; WaveNet).

    Receptive field: 1 + 2 (k − 1)(2^L − 1) tokens (k = tcn_kernel, L = n_layers). The scalar mix
    sees ``tcn_outputs`` block outputs, evenly spaced and ending with the last block, so the number
    of representation layers stays small however deep the stack is.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        P, H, L = cfg.projection_dim, cfg.cell_dim, cfg.n_layers
        self.blocks = nn.ModuleList(TCNBlock(P, H, cfg.tcn_kernel, 2**k, cfg.dropout) for k in range(L))
        m = cfg.tcn_outputs
        self.kept = [round((i + 1) * L / m) - 1 for i in range(m)]  # e.g. L = 6, m = 2 → blocks 2 and 5
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.dropout(x).transpose(1, 2)  # (B, P, T)
        outs = []
        for k, block in enumerate(self.blocks):
            h = block(h)
            if k in self.kept:
                outs.append(h.transpose(1, 2))  # (B, T, P)
        return outs


def make_stack(cfg: ModelConfig) -> nn.Module:
    """One direction's sequence body: (B, T, P) → list of (B, T, P) representation layers."""
    return {"lstm": LSTMStack, "gru": GRUStack, "tcn": TCNStack}[cfg.body](cfg)


def n_stack_outputs(cfg: ModelConfig) -> int:
    """How many representation layers one direction's body gives (L for LSTM/GRU, tcn_outputs for a TCN)."""
    return cfg.tcn_outputs if cfg.body == "tcn" else cfg.n_layers


def scan_stacks(stacks: list[LSTMStack], xs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Run several LSTM stacks (the forward and the backward LM) layer by layer together:
    xs D × (B, T, P) → D lists of L × (B, T, P), the same as ``[s(x) for s, x in zip(stacks, xs)]``."""
    x = torch.stack(xs)  # (D, B, T, P)
    first, outs = stacks[0], []
    for k in range(len(first.layers)):
        layers = [cast(LSTMLayer, s.layers[k]) for s in stacks]
        h = lstmp_scan(first.dropout(x), [layer.lstm for layer in layers], layers[0].cell_clip, layers[0].proj_clip)
        x = h + x if k > 0 and first.skip else h  # residual between LSTM layers (ELMo)
        outs.append(x)
    return [[o[d] for o in outs] for d in range(len(xs))]


# --- softmax heads ---------------------------------------------------------------------------


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
    """

    @staticmethod
    def forward(ctx, h, weight, bias, y):
        N, V = h.shape[0], weight.shape[0]
        grads = h.requires_grad or weight.requires_grad or bias.requires_grad
        d_logits = torch.empty(N, V, dtype=h.dtype, device=h.device) if grads else None
        d_bias = torch.zeros(V, dtype=torch.float32, device=h.device)
        total = torch.zeros((), dtype=torch.float64, device=h.device)
        rows = max(16, (1 << 23) // V)  # ≤ 32 MB of fp32 logits per chunk
        for s in range(0, N, rows):
            logits = (h[s : s + rows] @ weight.T).float().add_(bias)  # (n, V)
            yc = y[s : s + rows, None]
            true = logits.gather(1, yc)  # (n, 1)
            top = logits.amax(dim=-1, keepdim=True)
            p = logits.sub_(top).exp_()  # in place: the logits are not needed again
            norm = p.sum(dim=-1, keepdim=True)
            total += (norm.log() + top - true).sum().double()  # log-sum-exp − true logit
            if grads:
                p.div_(norm).scatter_add_(1, yc, torch.full_like(true, -1.0))  # softmax − one-hot
                d_bias += p.sum(0)
                d_logits[s : s + rows] = p
        if grads:
            ctx.save_for_backward(h, weight, d_logits, d_bias)
        return total.float()

    @staticmethod
    def backward(ctx, grad):
        h, weight, d_logits, d_bias = ctx.saved_tensors
        # scale the (N, P) and (V, P) products by the incoming scalar, not the (N, V) logits
        return (d_logits @ weight) * grad, (d_logits.T @ h) * grad, d_bias * grad, None


def linear_nll(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """h (N, P), weight (V, P), bias (V,), y (N,) → summed NLL (fp32), matmuls in the autocast dtype."""
    dev = h.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else h.dtype
    with torch.autocast(dev, enabled=False):
        return LinearNLL.apply(h.to(dt), weight.to(dt), bias.float(), y)


@dataclass(frozen=True)
class Kernels:
    """How the biLM computes, not what: each switch gives the same numbers up to rounding. All on
    by default; :meth:`straightforward` is the plain-PyTorch baseline that bench/ measures against."""

    trim_chars: bool = True  # encode only the character columns a batch needs
    scan: bool = True  # both LSTM stacks in one scan with a hand-written backward (LSTMPScan)
    fused_softmax: bool = True  # the full softmax's loss through LinearNLL (no (N, V) logits kept)

    @classmethod
    def straightforward(cls) -> Kernels:
        return cls(trim_chars=False, scan=False, fused_softmax=False)


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
        samp_logit = h @ self.weight[samples].T + self.bias[samples] - log_expected(samples)  # (N, S)
        samp_logit = samp_logit.masked_fill(samples[None, :] == y[:, None], float("-inf"))  # accidental hits
        logits = torch.cat([true_logit[:, None], samp_logit], dim=1).float()
        return Fn.cross_entropy(logits, torch.zeros_like(y), reduction="sum")


# --- the biLM --------------------------------------------------------------------------------


@dataclass
class BiLMOutput:
    layers: list[torch.Tensor]  # L + 1 tensors (B, T, 2P): token layer duplicated, then [fwd ; bwd]
    forward_top: torch.Tensor  # (B, T, P) top forward layer
    backward_top: torch.Tensor  # (B, T, P) top backward layer (in original token order)
    mask: torch.Tensor  # (B, T) bool


class BiLM(nn.Module):
    """ELMo biLM: shared token encoder and softmax, separate forward and backward sequence bodies
    (``model.body``: ELMo's projected LSTM by default)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, kernels: Kernels = Kernels()):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.kernels = kernels
        self.token_encoder = TokenEncoder(cfg)
        self.forward_stack = make_stack(cfg)  # reads left to right
        self.backward_stack = make_stack(cfg)  # reads each sentence reversed
        # vocab_size 0: an encoder without a vocabulary (e.g. imported ELMo weights, which hold no softmax)
        self.softmax = SoftmaxHead(cfg, vocab_size, kernels.fused_softmax) if vocab_size > 0 else None
        self.dropout = nn.Dropout(cfg.dropout)

    def encode(self, chars: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Token layer: chars (U, C) of distinct tokens, index (B, T) into U → (B, T, P)."""
        if self.kernels.trim_chars:
            chars = trim_chars(chars, self.token_encoder.cnn.max_width)
        tokens = self.token_encoder(chars)  # (U, P)
        # why index_select: its backward (index_add) is deterministic on CPU with several threads;
        # advanced indexing's backward (index_put with accumulate) is not, which broke same-seed runs
        return tokens.index_select(0, index.reshape(-1)).view(*index.shape, tokens.shape[-1])

    def forward(self, chars: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> BiLMOutput:
        """chars (U, C), index (B, T), mask (B, T) bool → :class:`BiLMOutput`."""
        return self.contextualize(self.encode(chars, index), mask)

    def contextualize(self, x: torch.Tensor, mask: torch.Tensor) -> BiLMOutput:
        """Token layer x (B, T, P) and mask (B, T) → :class:`BiLMOutput` (the LSTM stacks)."""
        lengths = mask.sum(dim=1)  # (B,)
        x_rev = reverse_padded(x, lengths)
        if self.uses_scan(x):
            stacks = [cast(LSTMStack, self.forward_stack), cast(LSTMStack, self.backward_stack)]  # body "lstm"
            fwd, bwd = scan_stacks(stacks, [x, x_rev])  # 2 × L × (B, T, P)
        else:
            fwd, bwd = self.forward_stack(x), self.backward_stack(x_rev)
        bwd = [reverse_padded(h, lengths) for h in bwd]
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat([f, b], dim=-1) for f, b in zip(fwd, bwd)]
        return BiLMOutput(layers, fwd[-1], bwd[-1], mask)

    def uses_scan(self, x: torch.Tensor) -> bool:
        """Whether the LSTM stacks run through :class:`LSTMPScan` rather than PyTorch's kernel.

        Measured (bench/): in fp32 training on CPU both run at the same speed, and the scan is what
        gives bf16 matmuls and clipping; for fp32 inference PyTorch's kernel is ~1.5× faster (no
        Python step loop). On a GPU cuDNN's fused projected LSTM is used unless clipping is set."""
        cfg = self.cfg
        if cfg.body != "lstm" or not self.kernels.scan:
            return False
        if cfg.cell_clip is not None or cfg.proj_clip is not None:
            return True
        dev = x.device.type
        return dev == "cpu" and (torch.is_grad_enabled() or torch.is_autocast_enabled(dev))

    @property
    def lm_head(self) -> SoftmaxHead:
        """The softmax; an encoder imported without one (bilm-tf weights) cannot score text."""
        if self.softmax is None:
            raise PipelineError("this biLM has no softmax (imported without a vocabulary): it embeds, it cannot score")
        return self.softmax

    def lm_nll(self, out: BiLMOutput, fwd_targets: torch.Tensor, bwd_targets: torch.Tensor):
        """Summed NLL of the forward and backward LMs: (fwd_sum, bwd_sum)."""
        f = self.lm_head.nll(self.dropout(out.forward_top), fwd_targets)
        b = self.lm_head.nll(self.dropout(out.backward_top), bwd_targets)
        return f, b

    @property
    def n_layers(self) -> int:
        """Representation layers in :class:`BiLMOutput`: the token layer + each body output (L + 1)."""
        return n_stack_outputs(self.cfg) + 1

    def n_params(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


def batch_inputs(type_ids: torch.Tensor, char_table: np.ndarray | torch.Tensor, dedup: bool = True):
    """(B, T) type ids → (chars (U, C), index (B, T)): the distinct tokens' char ids and where they go.

    ``dedup=False`` gives every position its own row (the straightforward baseline).
    """
    table = char_table if torch.is_tensor(char_table) else torch.from_numpy(np.array(char_table, dtype=np.int64))
    if dedup:
        uniq, inverse = torch.unique(type_ids, return_inverse=True)
        return table[uniq].long(), inverse
    B, T = type_ids.shape
    return table[type_ids.reshape(-1)].long(), torch.arange(B * T).view(B, T)


# --- a saved biLM ------------------------------------------------------------------------------


def build_bilm(config: dict, source: str) -> BiLM:
    """A BiLM from a saved ``config.json``'s ``model`` and ``vocab_size``; a missing or mistyped
    field is a one-line error naming ``source``."""
    from pipeline.errors import PipelineError

    try:
        model_cfg = ModelConfig(**config["model"])
        vocab_size = int(config["vocab_size"])
        model_cfg.validate(source)
        model_cfg.check_vocab(vocab_size, source)
        if "max_chars" in config:
            model_cfg.check_max_chars(int(config["max_chars"]), source)
        return BiLM(model_cfg, vocab_size)
    except PipelineError:
        raise
    except Exception as e:  # missing or mistyped fields that the model cannot be built from
        raise PipelineError(f"{source}: bad or missing architecture field ({type(e).__name__}: {e})") from None


def load_bilm(path, device: str | torch.device = "cpu") -> tuple[BiLM, dict]:
    """A biLM saved by pretraining (``models/pretrain/best`` or a checkpoint): (model in eval mode, config)."""
    from pathlib import Path

    from pipeline.io import CONFIG_FILE, check_weights, directory_kind, read_model_config, read_weights

    path = Path(path)
    kind = "checkpoint" if directory_kind(path) == "checkpoint" else "bilm"
    hint = "; pass its best/ directory" if directory_kind(path) == "pretrain-run" else ""
    config = read_model_config(path, kind, hint=hint)
    model = build_bilm(config, str(path / CONFIG_FILE))
    state = read_weights(path, str(device))
    check_weights(path / "model.safetensors", state, model.state_dict())
    model.load_state_dict(state)
    return model.to(device).eval(), config
