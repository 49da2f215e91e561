"""Per-token task inputs: ``[word2vec vector ; ELMo scalar mix]`` (ELMo §3.3), each part switchable.

With the encoder frozen (the default) the biLM layers of every sentence are computed once and
kept, so training a task pays for the biLM only once per sentence; the task's ScalarMix (and the
dropout on the ELMo part) is applied on top, per batch. With ``finetune_encoder`` the biLM is a
submodule: its layers are recomputed with gradients on every batch (and its dropout follows
``train()``/``eval()``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from pipeline.tasks.scalar_mix import ScalarMix


class Features(nn.Module):
    """Sentences (token lists) → (x (B, T, D), mask (B, T)). ``encoder`` and/or ``word2vec`` may be None."""

    def __init__(self, encoder=None, word2vec=None, layer_norm: bool = False, elmo_dropout: float = 0.5,
                 finetune_encoder: bool = False):
        super().__init__()
        if encoder is None and word2vec is None:
            raise ValueError("Features need the ELMo encoder, word2vec vectors, or both")
        if finetune_encoder and encoder is None:
            raise ValueError("finetune_encoder needs an encoder")
        self.encoder = encoder
        self.word2vec = word2vec  # a pipeline.word2vec.VectorLookup
        self.finetune_encoder = finetune_encoder
        # registered as a submodule only when it is trained: its weights then join the task's state
        self.bilm = encoder.model if finetune_encoder else None
        if encoder is not None:
            encoder.model.requires_grad_(finetune_encoder)
        self.mix = ScalarMix(encoder.n_layers, layer_norm=layer_norm) if encoder is not None else None
        self.dropout = nn.Dropout(elmo_dropout)
        self.dim = (encoder.dim if encoder is not None else 0) + (word2vec.dim if word2vec is not None else 0)
        self._layers: dict[tuple[str, ...], np.ndarray] = {}
        self._w2v: dict[str, np.ndarray] = {}

    def share_layers(self, kept: dict) -> None:
        """Keep the frozen biLM's layers in ``kept`` (a dict shared by runs over the same encoder,
        e.g. several seeds): layers already there are reused, new ones are added to it."""
        self._layers = kept

    def _unkept(self, sentences: Sequence[Sequence[str]], batch_tokens: int = 4096) -> dict:
        """biLM layers of the distinct non-empty sentences not kept yet (frozen encoder)."""
        todo = list(dict.fromkeys(tuple(s) for s in sentences if s and tuple(s) not in self._layers))
        return dict(zip(todo, self.encoder.embed([list(k) for k in todo], batch_tokens))) if todo else {}

    def precompute(self, sentences: Sequence[Sequence[str]], batch_tokens: int = 4096) -> None:
        """Compute and keep the biLM layers of these sentences (frozen encoder only)."""
        if self.encoder is None or self.finetune_encoder:
            return
        self._layers.update(self._unkept(sentences, batch_tokens))

    def _word_vector(self, token: str) -> np.ndarray:
        v = self._w2v.get(token)
        if v is None:
            v = self._w2v[token] = self.word2vec.vector(token)[0]
        return v

    def _elmo_layers(self, sentences: Sequence[Sequence[str]], B: int, T: int, store: bool) -> torch.Tensor:
        """(L+1, B, T, 2P); rows of empty sentences are zero. ``store``: keep new sentences' layers."""
        L = self.encoder.n_layers
        real = [b for b, s in enumerate(sentences) if s]
        if self.finetune_encoder:
            device = next(self.bilm.parameters()).device
            layers = torch.zeros(L, B, T, self.encoder.dim, device=device)
            if real:
                out = self.encoder.layers([sentences[b] for b in real])  # (L+1, R, T', 2P)
                layers = layers.index_copy(1, torch.tensor(real, device=device),
                                           torch.nn.functional.pad(out, (0, 0, 0, T - out.shape[2])))
            return layers
        fresh = self._unkept([sentences[b] for b in real])
        if store:
            self._layers.update(fresh)
        layers = torch.zeros(L, B, T, self.encoder.dim)
        for b in real:
            key = tuple(sentences[b])
            layers[:, b, : len(key)] = torch.from_numpy(fresh[key] if key in fresh else self._layers[key])
        return layers

    def forward(self, sentences: Sequence[Sequence[str]], store: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``store=False`` (prediction on new text): use kept layers, but keep none of the new ones,
        so memory does not grow with the input."""
        B, T = len(sentences), max(1, max((len(s) for s in sentences), default=0))
        mask = torch.zeros(B, T, dtype=torch.bool)
        for b, s in enumerate(sentences):
            mask[b, : len(s)] = True
        parts = []
        if self.word2vec is not None:
            w = torch.zeros(B, T, self.word2vec.dim)
            for b, s in enumerate(sentences):
                if s:
                    w[b, : len(s)] = torch.from_numpy(np.stack([self._word_vector(t) for t in s]))
            parts.append(w)
        if self.encoder is not None:
            layers = self._elmo_layers(sentences, B, T, store).to(self.mix.scalars.device)
            mask_d = mask.to(layers.device)
            parts.append(self.dropout(self.mix(list(layers), mask_d)))
        device = self.mix.scalars.device if self.mix is not None else torch.device("cpu")
        return torch.cat([p.to(device) for p in parts], dim=-1), mask.to(device)
