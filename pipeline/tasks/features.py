"""Per-token task inputs, ELMo §3.3 on top of a strong baseline: ``[word ; casing ; chars ; ELMo mix]``.

- **word**: a trainable embedding table over lower-cased words (the training data's words plus the
  word2vec vocabulary), initialised from the word2vec vectors, with a learned unknown-word row;
  training words seen once are replaced by it with probability ``word_dropout`` (Lample et al.
  2016), so the model learns what to do with words it has never seen. ``word_vectors: frozen``
  keeps the table fixed; ``lookup`` is the earlier input: each token's word2vec vector looked up
  (exact, lower-cased, else a fixed random vector), frozen, no casing feature.
- **casing**: a small learned embedding of the token's shape (lower, Title, UPPER, numeric, ...),
  since the word lookup is lower-cased.
- **chars**: the task's own character CNN over the token's UTF-8 bytes (Ma & Hovy 2016: embed,
  dropout, one convolution, max over characters).
- **ELMo**: the task's scalar mix of the biLM's L+1 layers, with dropout. With the encoder frozen
  (the default) the biLM layers of every sentence are computed once and kept, so training pays
  for the biLM only once per sentence; with ``finetune_encoder`` the biLM is a submodule whose
  layers are recomputed with gradients on every batch.
"""

from __future__ import annotations

import functools
import zlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.data.chars import N_CHAR_IDS, PAD_CHAR, token_char_ids
from pipeline.tasks.scalar_mix import ScalarMix

PAD, UNK = "<PAD>", "<UNK>"
WORDS_FILE = "words.txt"
CASES = ("pad", "lower", "title", "upper", "numeric", "has_digit", "mixed", "other")
CASE_DIM = 8


@functools.lru_cache(maxsize=1 << 18)
def casing(token: str) -> int:
    """The index in :data:`CASES` of a token's shape (cached: called for every token of every batch)."""
    if token.isdigit():
        return CASES.index("numeric")
    if any(c.isdigit() for c in token):
        return CASES.index("has_digit")
    if not any(c.isalpha() for c in token):
        return CASES.index("other")
    if token.islower():
        return CASES.index("lower")
    if token.isupper():
        return CASES.index("upper")
    if token[0].isupper() and token[1:].islower():
        return CASES.index("title")
    return CASES.index("mixed")


def build_word_list(sentences: Sequence[Sequence[str]], word2vec=None, max_words: int = 100_000) -> list[str]:
    """``<PAD>``, ``<UNK>``, the lower-cased training words (by frequency), then the word2vec
    vocabulary's lower-cased words in its own order, up to ``max_words`` in all."""
    counts = Counter(t.lower() for s in sentences for t in s)
    words = [PAD, UNK] + [w for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]
    seen = set(words)
    if word2vec is not None:
        for k in word2vec.kv.index_to_key:
            if len(words) >= max_words:
                break
            low = k.lower()
            if low not in seen:
                seen.add(low)
                words.append(low)
    return words[: max(max_words, 2)]


def init_vectors(words: list[str], word2vec, dim: int, seed: int) -> np.ndarray:
    """(len(words), dim) initial rows: a word's word2vec vector (its most frequent casing), else
    normal noise at the vectors' scale (seeded by the word); ``<PAD>`` zero."""
    kv = word2vec.kv if word2vec is not None else None
    lower: dict[str, str] = {}
    if kv is not None:
        for k in kv.index_to_key:  # most frequent first: the first casing of a word wins
            lower.setdefault(k.lower(), k)
    scale = float(np.std(kv.vectors)) if kv is not None and len(kv) else 0.1
    out = np.zeros((len(words), dim), dtype=np.float32)
    for i, w in enumerate(words[1:], start=1):
        if kv is not None and w in lower:
            out[i] = kv[lower[w]]
        else:
            rng = np.random.default_rng([seed, zlib.crc32(w.encode("utf-8", "surrogatepass"))])
            out[i] = rng.normal(0.0, scale, dim)
    return out


class WordEmbedding(nn.Module):
    """Sentences → (B, T, dim + CASE_DIM): lower-cased word vectors and the casing embedding."""

    def __init__(
        self,
        words: list[str],
        dim: int,
        init: np.ndarray | None = None,
        trainable: bool = True,
        word_dropout: float = 0.0,
        singletons: set[str] | None = None,
    ):
        super().__init__()
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.embedding = nn.Embedding(len(self.words), dim, padding_idx=0)
        if init is not None:
            self.embedding.weight.data.copy_(torch.from_numpy(init))
        self.embedding.weight.requires_grad_(trainable)
        self.case = nn.Embedding(len(CASES), CASE_DIM, padding_idx=0)
        self.word_dropout = word_dropout
        self.singletons = {self.index[w] for w in (singletons or ()) if w in self.index}
        self.word_dim = dim
        self.dim = dim + CASE_DIM

    def ids(self, sentences: Sequence[Sequence[str]], B: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        words = torch.zeros(B, T, dtype=torch.long)
        cases = torch.zeros(B, T, dtype=torch.long)
        unk = self.index[UNK]
        for b, s in enumerate(sentences):
            ids = [self.index.get(t.lower(), unk) for t in s]
            if self.training and self.word_dropout and self.singletons:
                ids = [unk if i in self.singletons and torch.rand(()) < self.word_dropout else i for i in ids]
            words[b, : len(s)] = torch.tensor(ids, dtype=torch.long)
            cases[b, : len(s)] = torch.tensor([casing(t) for t in s], dtype=torch.long)
        return words, cases

    def forward(self, sentences: Sequence[Sequence[str]], B: int, T: int) -> torch.Tensor:
        words, cases = self.ids(sentences, B, T)
        device = self.embedding.weight.device
        return torch.cat([self.embedding(words.to(device)), self.case(cases.to(device))], dim=-1)

    def save_words(self, directory: Path) -> None:
        (directory / WORDS_FILE).write_text("".join(w + "\n" for w in self.words), encoding="utf-8")


class TaskCharCNN(nn.Module):
    """The task's character encoder (Ma & Hovy 2016): UTF-8 byte ids of each token → embed (E) →
    dropout → convolution (width w, F filters) → max over characters → (B, T, F)."""

    MAX_CHARS = 30  # bytes kept per token (with the word markers); longer tokens are truncated

    def __init__(self, char_dim: int = 30, filters: int = 50, width: int = 3, dropout: float = 0.5):
        super().__init__()
        self.embed = nn.Embedding(N_CHAR_IDS, char_dim, padding_idx=PAD_CHAR)
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(char_dim, filters, width, padding=width // 2)
        self.dim = filters
        self._ids: dict[str, np.ndarray] = {}

    def _char_ids(self, token: str) -> np.ndarray:
        ids = self._ids.get(token)
        if ids is None:
            ids = self._ids[token] = token_char_ids(token, self.MAX_CHARS)
        return ids

    def forward(self, sentences: Sequence[Sequence[str]], B: int, T: int) -> torch.Tensor:
        distinct = list(dict.fromkeys(t for s in sentences for t in s))
        where = {t: i for i, t in enumerate(distinct)}
        device = self.embed.weight.device
        out = torch.zeros(B, T, self.dim, device=device)
        if not distinct:
            return out
        chars = torch.from_numpy(np.stack([self._char_ids(t) for t in distinct]).astype(np.int64)).to(device)
        h = self.conv(self.dropout(self.embed(chars)).transpose(1, 2))  # (U, F, C)
        pad = (chars == PAD_CHAR)[:, None, :]
        vecs = h.masked_fill(pad, float("-inf")).amax(dim=2)  # (U, F): max over real characters
        index = torch.tensor([[where[t] for t in s] + [0] * (T - len(s)) for s in sentences], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sentences], device=device, dtype=torch.bool)
        # index_select: a deterministic backward on CPU (see pipeline.bilm.model.BiLM.encode)
        return vecs.index_select(0, index.reshape(-1)).view(B, T, -1) * mask[..., None]


class LookupVectors:
    """``word_vectors: lookup``: each token's word2vec vector (exact, lower-cased, else a fixed
    random vector: :class:`pipeline.word2vec.VectorLookup`), frozen, cached per token."""

    def __init__(self, word2vec):
        self.word2vec = word2vec
        self.dim = word2vec.dim
        self._cache: dict[str, np.ndarray] = {}

    def _vector(self, token: str) -> np.ndarray:
        v = self._cache.get(token)
        if v is None:
            v = self._cache[token] = self.word2vec.vector(token)[0]
        return v

    def __call__(self, sentences: Sequence[Sequence[str]], B: int, T: int) -> torch.Tensor:
        w = torch.zeros(B, T, self.dim)
        for b, s in enumerate(sentences):
            if s:
                w[b, : len(s)] = torch.from_numpy(np.stack([self._vector(t) for t in s]))
        return w


def build_features(
    cfg,
    encoder=None,
    word2vec=None,
    train_sentences: Sequence[Sequence[str]] = (),
    words: list[str] | None = None,
    word_dim: int | None = None,
) -> Features:
    """The inputs ``cfg`` (a FinetuneConfig) asks for. A new model's word table comes from
    ``train_sentences`` and ``word2vec``; a loaded model passes its saved ``words`` and ``word_dim``."""
    use_words, use_elmo = cfg.inputs.use in ("both", "word2vec"), cfg.inputs.use in ("both", "elmo")
    word_part: WordEmbedding | LookupVectors | None = None
    if use_words and cfg.inputs.word_vectors == "lookup":
        word_part = LookupVectors(word2vec)
    elif use_words:
        dim = word_dim or (word2vec.dim if word2vec is not None else 100)
        init = None
        if words is None:
            words = build_word_list(train_sentences, word2vec, cfg.inputs.max_words)
            init = init_vectors(words, word2vec, dim, cfg.training.seed)
        counts = Counter(t.lower() for s in train_sentences for t in s)
        word_part = WordEmbedding(
            words,
            dim,
            init,
            cfg.inputs.word_vectors == "trainable",
            cfg.inputs.word_dropout,
            {w for w, c in counts.items() if c == 1},
        )
    chars = (
        TaskCharCNN(cfg.inputs.char_dim, cfg.inputs.char_filters, cfg.inputs.char_width, cfg.head.dropout)
        if cfg.inputs.char_encoder == "cnn"
        else None
    )
    return Features(
        encoder if use_elmo else None,
        word_part,
        chars,
        layer_norm=cfg.inputs.layer_norm,
        elmo_dropout=cfg.inputs.elmo_dropout,
        finetune_encoder=cfg.training.finetune_encoder,
        elmo_output=cfg.head.elmo_output,
    )


class Features(nn.Module):
    """Sentences (token lists) → (x (B, T, D), mask (B, T), out (B, T, 2P) or None), D the sum of the
    parts' sizes (``dim``); ``out`` is the second ELMo mix, for the task RNN's output (``elmo_output``;
    its width 2P is ``output_dim``, 0 without it).

    ``words``: a :class:`WordEmbedding`, :class:`LookupVectors` or None; ``chars``: a
    :class:`TaskCharCNN` or None; ``encoder``: an Encoder (the ELMo part) or None."""

    def __init__(
        self,
        encoder=None,
        words=None,
        chars=None,
        layer_norm: bool = False,
        elmo_dropout: float = 0.5,
        finetune_encoder: bool = False,
        elmo_output: bool = False,
    ):
        super().__init__()
        if encoder is None and words is None and chars is None:
            raise ValueError("Features need at least one of: ELMo, word vectors, characters")
        if (finetune_encoder or elmo_output) and encoder is None:
            raise ValueError("finetune_encoder and elmo_output need an encoder")
        self.encoder = encoder
        self.words = words  # a submodule when it is a WordEmbedding
        self.word2vec = words.word2vec if isinstance(words, LookupVectors) else None  # saved with the model
        self.chars = chars
        self.finetune_encoder = finetune_encoder
        # registered as a submodule only when it is trained: its weights then join the task's state
        self.bilm = encoder.model if finetune_encoder else None
        if encoder is not None:
            encoder.model.requires_grad_(finetune_encoder)
        self.mix = ScalarMix(encoder.n_layers, layer_norm=layer_norm) if encoder is not None else None
        self.output_mix = ScalarMix(encoder.n_layers, layer_norm=layer_norm) if elmo_output else None
        self.dropout = nn.Dropout(elmo_dropout)
        self.dim = sum(part.dim for part in (encoder, words, chars) if part is not None)
        self.output_dim = encoder.dim if elmo_output else 0  # width of ``out``
        self._layers: dict[tuple[str, ...], np.ndarray] = {}

    def share_layers(self, kept: dict) -> None:
        """Keep the frozen biLM's layers in ``kept`` (a dict shared by runs over the same encoder,
        e.g. several seeds): layers already there are reused, new ones are added to it."""
        self._layers = kept

    def _unkept(
        self, sentences: Sequence[Sequence[str]], batch_tokens: int = 4096, progress: str | None = None
    ) -> dict:
        """biLM layers of the distinct non-empty sentences not kept yet (frozen encoder)."""
        todo = list(dict.fromkeys(tuple(s) for s in sentences if s and tuple(s) not in self._layers))
        return dict(zip(todo, self.encoder.embed([list(k) for k in todo], batch_tokens, progress))) if todo else {}

    def precompute(self, sentences: Sequence[Sequence[str]], batch_tokens: int = 4096, progress: bool = True) -> None:
        """Compute and keep the biLM layers of these sentences (frozen encoder only), with a bar."""
        if self.encoder is None or self.finetune_encoder:
            return
        self._layers.update(self._unkept(sentences, batch_tokens, "frozen biLM layers" if progress else None))

    def _elmo_layers(self, sentences: Sequence[Sequence[str]], B: int, T: int, store: bool) -> torch.Tensor:
        """(L+1, B, T, 2P); rows of empty sentences are zero. ``store``: keep new sentences' layers."""
        L = self.encoder.n_layers
        real = [b for b, s in enumerate(sentences) if s]
        if self.finetune_encoder:
            device = next(self.encoder.model.parameters()).device
            layers = torch.zeros(L, B, T, self.encoder.dim, device=device)
            if real:
                out = self.encoder.layers([sentences[b] for b in real])  # (L+1, R, T', 2P)
                layers = layers.index_copy(
                    1, torch.tensor(real, device=device), torch.nn.functional.pad(out, (0, 0, 0, T - out.shape[2]))
                )
            return layers
        fresh = self._unkept([sentences[b] for b in real])
        if store:
            self._layers.update(fresh)
        layers = torch.zeros(L, B, T, self.encoder.dim)
        for b in real:
            key = tuple(sentences[b])
            layers[:, b, : len(key)] = torch.from_numpy(fresh[key] if key in fresh else self._layers[key])
        return layers

    def forward(self, sentences: Sequence[Sequence[str]], store: bool = True):
        """(x, mask, out); ``store=False`` (prediction on new text): use kept layers, but keep none of
        the new ones, so memory does not grow with the input."""
        B, T = len(sentences), max(1, max((len(s) for s in sentences), default=0))
        mask = torch.zeros(B, T, dtype=torch.bool)
        for b, s in enumerate(sentences):
            mask[b, : len(s)] = True
        device = self.device()
        mask = mask.to(device)
        parts = [part(sentences, B, T).to(device) for part in (self.words, self.chars) if part is not None]
        out = None
        if self.encoder is not None and self.mix is not None:
            layers = list(self._elmo_layers(sentences, B, T, store).to(device))
            parts.append(self.dropout(self.mix(layers, mask)))
            if self.output_mix is not None:
                out = self.dropout(self.output_mix(layers, mask))
        return torch.cat(parts, dim=-1), mask, out

    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
