"""The sequence bodies of the biLM, each (B, T, P) → L × (B, T, P) and causal: ``lstm`` (ELMo:
projected LSTM layers with residual connections), ``gru`` and ``tcn`` behind the same interface;
:func:`scan_stacks` runs the forward and backward LSTM stacks together through :mod:`.lstmp`.
Mask convention: padding after a sentence's end never reaches real positions (causal bodies,
and the backward stack reads each sentence reversed within its own length)."""

from __future__ import annotations

import warnings
from typing import cast

import torch
import torch.nn.functional as Fn
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from pipeline.bilm.lstmp import lstmp_scan, lstmp_steps, scan_inputs
from pipeline.config import ModelConfig

# a batch whose real positions are fewer than this share of B × T skips its padding (packed): above
# it, packing costs more than the padding (measured on sorted batches of SST sentences)
PACK_BELOW = 0.75


def mostly_real(lengths: torch.Tensor, T: int) -> bool:
    """Whether rows of ``lengths`` (B,) fill at least :data:`PACK_BELOW` of a (B, T) batch."""
    return int(lengths.sum()) >= PACK_BELOW * lengths.numel() * T


# PyTorch notes once that oneDNN lacks projected LSTMs and uses its own C++ kernel: expected here.
warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")


class LSTMLayer(nn.Module):
    """One LSTM layer with cell H and projection P: (B, T, P) → (B, T, P), zero initial state.

    Holds the weights of PyTorch's ``nn.LSTM(proj_size=P)`` (so saved names stay). Training and
    inference on batches of similar lengths run them through :func:`scan_stacks`; ``forward`` here
    is PyTorch's own kernel: inference on batches of mixed lengths (padding skipped), without the
    compiled cell, the straightforward baseline in bench/, and generation.
    """

    def __init__(self, dim: int, cell: int, cell_clip: float | None, proj_clip: float | None):
        super().__init__()
        self.lstm = nn.LSTM(dim, cell, batch_first=True, proj_size=dim)
        self.cell_clip, self.proj_clip = cell_clip, proj_clip

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` (B,): each row's length, to skip the padding (a packed sequence; zero there).
        Why: a batch of texts of mixed lengths (a served batch) otherwise runs every row to the
        longest (measured: 32 SST sentences in arrival order cost 2.3× their sorted padding-free time)."""
        if self.cell_clip is None and self.proj_clip is None:
            if lengths is None:
                return self.lstm(x)[0]
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]
        return lstmp_scan(x[None], [self.lstm], self.cell_clip, self.proj_clip)[0]


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

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> list[torch.Tensor]:
        """x (B, T, P) → L × (B, T, P); ``lengths`` (B,): skip each row's padding (see :class:`LSTMLayer`)."""
        outs = []
        for k, layer in enumerate(self.layers):
            h = layer(self.dropout(x), lengths)  # (B, T, P)
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


def scan_stacks(stacks: list[LSTMStack], xs: list[torch.Tensor], native: bool = True) -> list[list[torch.Tensor]]:
    """Run several LSTM stacks (the forward and the backward LM) layer by layer together:
    xs D × (B, T, P) → D lists of L × (B, T, P), the same as ``[s(x) for s, x in zip(stacks, xs)]``.
    ``native``: the compiled cell where it can run (see :mod:`.lstmp`)."""
    x = torch.stack(xs)  # (D, B, T, P)
    first, outs = stacks[0], []
    for k in range(len(first.layers)):
        layers = [cast(LSTMLayer, s.layers[k]) for s in stacks]
        lstms = [layer.lstm for layer in layers]
        h = lstmp_scan(first.dropout(x), lstms, layers[0].cell_clip, layers[0].proj_clip, native)
        x = h + x if k > 0 and first.skip else h  # residual between LSTM layers (ELMo)
        outs.append(x)
    return [[o[d] for o in outs] for d in range(len(xs))]


def lstm_layer_from_state(x: torch.Tensor, layer: LSTMLayer, h0: torch.Tensor, c0: torch.Tensor):
    """One LSTM layer on unpadded x (B, T, P) from the state h0 (B, P), c0 (B, H), fp32, no autograd
    → (out (B, T, P), h_T, c_T). Only for replaying a *stateful* biLM (AllenNLP's ``Elmo`` carries
    each row's state to the next batch; the reference activations of bilm-tf fixtures need it):
    our encoder always starts a sentence from zero state, so embeddings are per sentence."""
    with torch.no_grad():
        gx, bias, w_hh, w_hr = scan_inputs(x[None].float(), [layer.lstm], torch.float32)
        out, c, _ = lstmp_steps(gx, bias, w_hh, w_hr, layer.cell_clip, layer.proj_clip, h0[None], c0[None])
        return out[0].transpose(0, 1), out[0, -1], c[0]  # (B, T, P), (B, P), (B, H)
