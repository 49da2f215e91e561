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

The parts: :mod:`.tokens` (token encoder), :mod:`.bodies` (sequence bodies), :mod:`.lstmp` (the
clipped projected-LSTM kernel), :mod:`.softmax` (softmax heads); this module joins them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from pipeline.bilm.bodies import (
    LSTMStack,
    make_stack,
    mostly_real,
    n_stack_outputs,
    reverse_padded,
    scan_stacks,
)
from pipeline.bilm.native import cell_kernel
from pipeline.bilm.softmax import SoftmaxHead
from pipeline.bilm.tokens import TokenEncoder
from pipeline.config import ModelConfig
from pipeline.cpu import check_fits_memory
from pipeline.errors import PipelineError


@dataclass(frozen=True)
class Kernels:
    """How the biLM computes, not what: each switch gives the same numbers up to rounding. All on
    by default; :meth:`straightforward` is the plain-PyTorch baseline that bench/ measures against."""

    trim_chars: bool = True  # encode only the character columns a batch needs
    scan: bool = True  # both LSTM stacks in one scan with a hand-written backward (LSTMPScan)
    fused_softmax: bool = True  # the full softmax's loss through LinearNLL (no (N, V) logits kept)
    native_cell: bool = True  # the scan's element-wise cell work in compiled C on the CPU (lstmp_cell.c)

    @classmethod
    def straightforward(cls) -> Kernels:
        return cls(trim_chars=False, scan=False, fused_softmax=False, native_cell=False)


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
        # (U, P); by_length: only the character columns each group of tokens needs
        tokens = self.token_encoder.by_length(chars) if self.kernels.trim_chars else self.token_encoder(chars)
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
        full = mostly_real(lengths, x.shape[1])
        if self.uses_scan(x, full):
            stacks = [cast(LSTMStack, self.forward_stack), cast(LSTMStack, self.backward_stack)]  # body "lstm"
            fwd, bwd = scan_stacks(stacks, [x, x_rev], self.kernels.native_cell)  # 2 × L × (B, T, P)
        elif self.cfg.body == "lstm":
            skip = None if full else lengths  # PyTorch's kernel skips the padding of a batch of mixed lengths
            fwd, bwd = self.forward_stack(x, skip), self.backward_stack(x_rev, skip)
        else:
            fwd, bwd = self.forward_stack(x), self.backward_stack(x_rev)
        bwd = [reverse_padded(h, lengths) for h in bwd]
        layers = [torch.cat([x, x], dim=-1)] + [torch.cat([f, b], dim=-1) for f, b in zip(fwd, bwd)]
        return BiLMOutput(layers, fwd[-1], bwd[-1], mask)

    def uses_scan(self, x: torch.Tensor, full: bool = False) -> bool:
        """Whether the LSTM stacks run through :class:`LSTMPScan` rather than PyTorch's kernel.

        Training on CPU (and clipping, bf16) always scans. At fp32 inference on CPU the scan with
        the compiled cell runs both directions as one batch and is the faster on batches of
        similar lengths (the `make repro` sentiment model's predict on 2,000 SST-2 sentences all
        at once: 1,731 and 1,676 against 1,444 and 1,499 texts/s with PyTorch's kernel, two
        alternating runs), while PyTorch's kernel skips padding (:class:`LSTMLayer`) and is the
        faster on batches of mixed lengths (arrival-order batches of 32: 736 and 705 against 638
        and 651): so the scan when the batch is ``full`` (at least ``PACK_BELOW`` of its positions
        real: :func:`mostly_real`) and the compiled cell is there. On a GPU cuDNN's fused projected LSTM is used unless
        clipping is set."""
        cfg = self.cfg
        if cfg.body != "lstm" or not self.kernels.scan:
            return False
        if cfg.cell_clip is not None or cfg.proj_clip is not None:
            return True
        dev = x.device.type
        if dev != "cpu":
            return False
        if torch.is_grad_enabled() or torch.is_autocast_enabled(dev):
            return True
        return full and self.kernels.native_cell and cell_kernel() is not None

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
        check_fits_memory(model_cfg.parameter_estimate(vocab_size), 1, "model", source)
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
