"""The ELMo bidirectional language model, top to bottom (Peters et al. 2018; Kim et al. 2016).

::

    char ids of the distinct tokens (U, C)
      └─ CharCNN: embed (U, C, E) → conv widths w=1..7 → max over positions → relu → (U, F)
         └─ Highway × n: g*x + (1-g)*relu(W x)                                   (U, F)
            └─ projection                                                        (U, P)
               └─ gather back to the sentence positions                          (B, T, P) = layer 0
                  ├─ forward LSTM stack  (L layers, cell H, projection P, residual)  → (B, T, P) each
                  └─ backward LSTM stack (same, on each sentence reversed)            → (B, T, P) each
                     └─ shared softmax: forward predicts token t+1, backward token t-1

Shapes: B batch, T tokens per sentence (with <S> and </S>), C chars per token, E char embedding,
F total filters, P projection, H LSTM cell, L layers, V vocabulary, U distinct tokens in a batch.
Mask convention: ``mask`` (B, T) is True on real tokens; positions after a sentence's end are
padding and never influence real positions (the backward LSTM reads each sentence reversed
within its own length), and targets there are ``-100`` so they never reach a loss.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from pipeline.config import ModelConfig
from pipeline.data.batching import IGNORE
from pipeline.data.chars import N_CHAR_IDS, PAD_CHAR

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

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        x = self.embed(chars).transpose(1, 2)  # (U, E, C)
        # max over positions, then relu (as bilm-tf and AllenNLP): (U, n) per width
        pooled = [torch.relu(conv(x).amax(dim=-1)) for conv in self.convs]
        return torch.cat(pooled, dim=-1)  # (U, F)


class Highway(nn.Module):
    """(…, F) → (…, F): ``g * x + (1 - g) * relu(W x)`` per layer (Srivastava et al. 2015)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, 2 * dim) for _ in range(n_layers))
        for layer in self.layers:
            # why: gate bias 1 → g ≈ 0.73, so each layer starts by mostly carrying its input
            nn.init.zeros_(layer.bias[:dim])
            nn.init.ones_(layer.bias[dim:])

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


# --- LSTM stacks -----------------------------------------------------------------------------


class LSTMLayer(nn.Module):
    """One LSTM layer with cell H and projection P: (B, T, P) → (B, T, P), zero initial state.

    Without clipping it is PyTorch's fused ``nn.LSTM(proj_size=P)``. With ``cell_clip`` or
    ``proj_clip`` (as bilm-tf) it runs the same weights step by step, clipping c and h.
    """

    def __init__(self, dim: int, cell: int, cell_clip: float | None, proj_clip: float | None):
        super().__init__()
        self.lstm = nn.LSTM(dim, cell, batch_first=True, proj_size=dim)
        self.cell_clip, self.proj_clip = cell_clip, proj_clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cell_clip is None and self.proj_clip is None:
            return self.lstm(x)[0]
        m = self.lstm
        B, T, _ = x.shape
        h = x.new_zeros(B, m.proj_size)
        c = x.new_zeros(B, m.hidden_size)
        gates_x = Fn.linear(x, m.weight_ih_l0, m.bias_ih_l0 + m.bias_hh_l0)  # (B, T, 4H)
        out = []
        for t in range(T):
            i, f, g, o = (gates_x[:, t] + h @ m.weight_hh_l0.T).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            if self.cell_clip is not None:
                c = c.clamp(-self.cell_clip, self.cell_clip)
            h = (torch.sigmoid(o) * torch.tanh(c)) @ m.weight_hr_l0.T
            if self.proj_clip is not None:
                h = h.clamp(-self.proj_clip, self.proj_clip)
            out.append(h)
        return torch.stack(out, dim=1)


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

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k, layer in enumerate(self.layers):
            h = layer(self.dropout(x))  # (B, T, P)
            x = h + x if k > 0 else h  # residual between LSTM layers (ELMo)
            outs.append(x)
        return outs


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


class SoftmaxHead(nn.Module):
    """Shared output layer. ``nll(h, targets)`` → summed negative log-likelihood over targets != -100.

    ``full``: exact softmax over V. ``sampled`` (training only): ELMo/Jean et al. 2015 sampled
    softmax with a log-uniform sampler over frequency-sorted ids, ``n_samples`` distinct negatives
    shared by the batch, accidental hits removed and each logit corrected by the log of its
    expected count (TF's ``sampled_softmax_loss`` with ``unique=True``); evaluation always uses
    the exact full softmax. ``adaptive``: ``nn.AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017),
    exact both in training and evaluation.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
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
        logits = Fn.linear(h, self.weight, self.bias)  # (N, V)
        return Fn.cross_entropy(logits.float(), y, reduction="sum")

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
    """ELMo biLM: shared token encoder and softmax, separate forward and backward LSTM stacks."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.token_encoder = TokenEncoder(cfg)
        self.forward_lstm = LSTMStack(cfg)
        self.backward_lstm = LSTMStack(cfg)
        self.softmax = SoftmaxHead(cfg, vocab_size)
        self.dropout = nn.Dropout(cfg.dropout)
        self.trim = True  # False only for the straightforward baseline in bench/

    def encode(self, chars: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Token layer: chars (U, C) of distinct tokens, index (B, T) into U → (B, T, P)."""
        if self.trim:
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
        fwd = self.forward_lstm(x)  # L × (B, T, P)
        bwd = [reverse_padded(h, lengths) for h in self.backward_lstm(reverse_padded(x, lengths))]
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat([f, b], dim=-1) for f, b in zip(fwd, bwd)]
        return BiLMOutput(layers, fwd[-1], bwd[-1], mask)

    def lm_nll(self, out: BiLMOutput, fwd_targets: torch.Tensor, bwd_targets: torch.Tensor):
        """Summed NLL of the forward and backward LMs: (fwd_sum, bwd_sum)."""
        f = self.softmax.nll(self.dropout(out.forward_top), fwd_targets)
        b = self.softmax.nll(self.dropout(out.backward_top), bwd_targets)
        return f, b

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

# state-dict names renamed since the first saved models: old prefix → new prefix
RENAMED_WEIGHTS = {"encoder.": "token_encoder."}


def upgrade_state(state: dict, renamed: dict[str, str] = RENAMED_WEIGHTS) -> dict:
    """Weights saved under old names (e.g. ``encoder.cnn...``) renamed to today's."""
    out = {}
    for k, v in state.items():
        for old, new in renamed.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def build_bilm(config: dict, source: str) -> BiLM:
    """A BiLM from a saved ``config.json``'s ``model`` and ``vocab_size``; a missing or mistyped
    field is a one-line error naming ``source``."""
    from pipeline.errors import PipelineError

    try:
        model_cfg = ModelConfig(**config["model"])
        vocab_size = int(config["vocab_size"])
        model_cfg.validate(source)
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
    state = upgrade_state(read_weights(path, str(device)))
    check_weights(path / "model.safetensors", state, model.state_dict())
    model.load_state_dict(state)
    return model.to(device).eval(), config
