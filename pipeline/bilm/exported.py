"""The biLM as one graph for ONNX (``elmo export --format onnx``): the token encoder over every
position and the projected-LSTM stacks as plain operations, the recurrence a ``scan`` that the
exporter writes as an ONNX ``Scan`` over time (so sentences of any length and batches of any size
run through one graph). Clipping (ELMo's ``cell_clip`` / ``proj_clip``) is a clamp per step.

Inputs: ``chars`` (B, T, C) int64, the character ids of each row ``[<S>, tokens..., </S>]``
(:func:`pipeline.data.chars.token_char_ids`), padding rows all ``PAD_CHAR``; ``lengths`` (B,)
int64, each row's length with ``<S>`` and ``</S>``. Output: ``layers`` (L+1, B, T, 2P) float32:
the token layer (twice), then each LSTM layer as ``[forward ; backward]``; positions past a row's
length hold no meaning. The same numbers as :meth:`BiLM.contextualize` up to float rounding."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch._higher_order_ops.scan import scan

from pipeline.bilm.bodies import LSTMLayer, LSTMStack, reverse_padded
from pipeline.bilm.model import BiLM
from pipeline.errors import PipelineError


class ExportedBiLM(nn.Module):
    """:class:`BiLM` (an LSTM body) as ``(chars, lengths) → layers`` for ONNX."""

    def __init__(self, model: BiLM):
        super().__init__()
        if model.cfg.body != "lstm":
            raise PipelineError(f"a {model.cfg.body} body cannot be exported to ONNX yet (the LSTM body can)")
        self.model = model.eval()

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, C = chars.shape
        x = self.model.token_encoder(chars.reshape(B * T, C)).reshape(B, T, -1)  # (B, T, P)
        mask = torch.arange(T, device=chars.device)[None, :] < lengths[:, None]  # (B, T)
        x = x * mask[..., None].to(x.dtype)
        fwd = stack_outputs(self.model.forward_stack, x)
        bwd = [reverse_padded(h, lengths) for h in stack_outputs(self.model.backward_stack, reverse_padded(x, lengths))]
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat([f, b], dim=-1) for f, b in zip(fwd, bwd)]
        return torch.stack(layers)  # (L+1, B, T, 2P)


def stack_outputs(stack: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """:class:`LSTMStack` in eval mode (no dropout): each layer's output, residual from the second."""
    assert isinstance(stack, LSTMStack)
    outs = []
    for k, layer in enumerate(stack.layers):
        assert isinstance(layer, LSTMLayer)
        h = lstm_scan(layer.lstm, x, layer.cell_clip, layer.proj_clip)
        x = h + x if k > 0 and stack.skip else h
        outs.append(x)
    return outs


def lstm_scan(
    lstm: nn.LSTM, x: torch.Tensor, cell_clip: float | None = None, proj_clip: float | None = None, suffix: str = "_l0"
) -> torch.Tensor:
    """One LSTM layer of ``lstm`` (its weights ``weight_*{suffix}``, gate order i, f, g, o; with a
    projection when it has ``proj_size``) over x (B, T, D) from a zero state → (B, T, P), P the
    projection (else the cell) size; the cell clamped at ``cell_clip``, the output at ``proj_clip``
    (None: not clipped)."""
    w_ih, w_hh = (cast(torch.Tensor, getattr(lstm, f"weight_{n}{suffix}")) for n in ("ih", "hh"))
    w_hr = cast(torch.Tensor, getattr(lstm, f"weight_hr{suffix}")) if lstm.proj_size else None  # (P, H)
    bias = cast(torch.Tensor, getattr(lstm, f"bias_ih{suffix}")) + cast(torch.Tensor, getattr(lstm, f"bias_hh{suffix}"))
    gx = (x @ w_ih.T + bias).transpose(0, 1)  # (T, B, 4H); w_ih (4H, D), w_hh (4H, P)
    B, H = x.shape[0], w_hh.shape[0] // 4
    P = w_hh.shape[1]

    def step(state, g_t):
        h, c = state
        gates = g_t + h @ w_hh.T  # (B, 4H)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if cell_clip is not None:
            c = c.clamp(-cell_clip, cell_clip)
        h = torch.sigmoid(o) * torch.tanh(c)
        if w_hr is not None:
            h = h @ w_hr.T
        if proj_clip is not None:
            h = h.clamp(-proj_clip, proj_clip)
        return (h, c), h.clone()

    init = (x.new_zeros(B, P), x.new_zeros(B, H))
    _, out = scan(step, init, gx)  # (T, B, P)
    return out.transpose(0, 1)


def bilstm_scan(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """A one-layer bidirectional ``lstm`` over x (B, T, D) with rows of ``lengths`` (B,) → (B, T, 2H),
    ``[forward ; backward]``, zero past each row's length (as a packed sequence gives)."""
    fwd = lstm_scan(lstm, x)
    bwd = reverse_padded(lstm_scan(lstm, reverse_padded(x, lengths), suffix="_l0_reverse"), lengths)
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
    return torch.cat([fwd, bwd], dim=-1) * mask[..., None].to(x.dtype)
