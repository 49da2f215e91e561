"""The token encoder of the biLM: characters → CharCNN → Highway → projection, for the distinct
tokens of a batch (Kim et al. 2016; ELMo §3). Shapes: U distinct tokens, C chars, E char embedding,
F total filters, P projection."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.chars import N_CHAR_IDS, PAD_CHAR


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
