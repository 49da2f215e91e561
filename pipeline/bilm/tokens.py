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
        pooled = [self.activation(max_over_positions(conv(x))) for conv in self.convs]
        return torch.cat(pooled, dim=-1)  # (U, F)


def max_over_positions(y: torch.Tensor) -> torch.Tensor:
    """(U, n, C') → (U, n). With autograd, ``max`` with indices: its backward scatters the gradient
    to the one position kept, where ``amax``'s spreads it over ties with three passes over (U, n, C')
    (measured: 22 % of a `small` training step in bf16, bench/pretrain_throughput.py). Tied positions
    are all-padding windows with equal inputs, so both give the same weight gradients."""
    if torch.is_grad_enabled() and y.requires_grad:
        return y.max(dim=-1).values
    return y.amax(dim=-1)


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
        return self.project(self.highway(self.cnn(chars)))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(U, F) → (U, P), in fp32 even under bf16 autocast. Why: measured on the released `small`
        shapes (bench/embed_throughput.py), a bf16 projection doubles the token layer's distance from
        fp32 (max |diff| 0.0085 against 0.0049) for 2 % of the token encoder's time."""
        with torch.autocast(x.device.type, enabled=False):
            return self.proj(x.float())

    def by_length(self, chars: torch.Tensor, rows: int = 512) -> torch.Tensor:
        """The same as ``forward`` (U, C) → (U, P), with the CNN run on tokens sorted by length in
        groups of ``rows``, each over only the columns its own longest token needs (trim_chars):
        a batch's few long tokens no longer make every short one pay for their columns."""
        U = chars.shape[0]
        if U <= rows:
            return self(trim_chars(chars, self.cnn.max_width))
        order = torch.argsort((chars != PAD_CHAR).sum(dim=1), stable=True)  # shortest first
        pooled = [self.cnn(trim_chars(chars[idx], self.cnn.max_width)) for idx in order.split(rows)]
        features = torch.cat(pooled).index_select(0, torch.argsort(order))  # back in the input order
        return self.project(self.highway(features))


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
