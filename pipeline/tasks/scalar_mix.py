"""ScalarMix (ELMo §3.2): a task's learned weighting of the biLM layers.

    mix = gamma * Σ_j softmax(s)_j * h_j

``s`` (one scalar per layer) and ``gamma`` are learned per task. With ``layer_norm`` each layer is
first normalised by the mean and variance of its unmasked positions (padding never shifts the
statistics), as AllenNLP's ``do_layer_norm``. ``penalty()`` gives ``Σ s_j²`` for an optional L2
regulariser that pulls the weights towards the uniform average.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ScalarMix(nn.Module):
    def __init__(self, n_layers: int, layer_norm: bool = False, trainable: bool = True):
        super().__init__()
        self.n_layers = n_layers
        self.layer_norm = layer_norm
        self.scalars = nn.Parameter(torch.zeros(n_layers), requires_grad=trainable)  # s: uniform at start
        self.gamma = nn.Parameter(torch.ones(1), requires_grad=trainable)

    def forward(self, layers: Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """``L+1`` tensors (B, T, D) and an optional mask (B, T), True on real tokens → (B, T, D)."""
        if len(layers) != self.n_layers:
            raise ValueError(f"ScalarMix expects {self.n_layers} layers, got {len(layers)}")
        weights = torch.softmax(self.scalars, dim=0)
        if self.layer_norm:
            m = torch.ones(layers[0].shape[:-1], dtype=torch.bool, device=layers[0].device) if mask is None else mask
            layers = [self._normalise(h, m) for h in layers]
        return self.gamma * sum(w * h for w, h in zip(weights, layers))

    @staticmethod
    def _normalise(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(h.dtype)  # (B, T, 1)
        n = (m.sum() * h.shape[-1]).clamp(min=1)
        mean = (h * m).sum() / n
        var = (((h - mean) * m) ** 2).sum() / n
        return (h - mean) / torch.sqrt(var + 1e-12)

    def penalty(self) -> torch.Tensor:
        return (self.scalars**2).sum()
