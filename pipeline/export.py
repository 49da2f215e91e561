"""The exported encoder: a self-contained directory and the :class:`Encoder` API to use it.

::

    models/encoder/
      config.json        format version, architecture, vocabulary and char settings, tokenizer,
                         whether the softmax is included, training summary
      model.safetensors  weights (token encoder + LSTM stacks [+ softmax with --with-softmax])
      vocab.txt          the softmax vocabulary (token<TAB>count)
      tokenizer.model    the SentencePiece model, when the corpus was tokenized with one
      README.md          model card: data, size, metrics, how to load

Loading reads JSON, text and safetensors only: no pickled code. ::

    from pipeline import Encoder
    enc = Encoder.from_pretrained("models/encoder")
    layers = enc.embed([["The", "cat", "sat", "."], ["Hello", "!"]])   # list of (L+1, n, 2P) arrays

Embeddings are deterministic: no state is carried across sentences or calls, and sentences are
batched by length internally, so a sentence's vectors do not depend on its batch companions.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pipeline.config import ModelConfig
from pipeline.data.chars import BOS_TOKEN, EOS_TOKEN, token_char_ids
from pipeline.data.tokenizers import SP_MODEL_FILE, SentencePieceTokenizer, WhitespaceTokenizer
from pipeline.data.vocab import BOS_ID, PAD_ID, UNK_ID, Vocab
from pipeline.errors import PipelineError
from pipeline.io import atomic_path
from pipeline.model import BiLM, trim_chars

FORMAT_VERSION = 1
REQUIRED = ("config.json", "model.safetensors", "vocab.txt")


def _rows_index(batch: list[list[str]]):
    """Token lists → (rows [<S>, ..., </S>], distinct tokens (U,), index (B, T) into them, mask (B, T))."""
    rows = [[BOS_TOKEN, *s, EOS_TOKEN] for s in batch]
    distinct = list(dict.fromkeys(t for r in rows for t in r))
    where = {t: i for i, t in enumerate(distinct)}
    B, T = len(rows), max(len(r) for r in rows)
    index = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, r in enumerate(rows):
        index[b, : len(r)] = torch.tensor([where[t] for t in r])
        mask[b, : len(r)] = True
    return rows, distinct, index, mask


class Encoder:
    """A pretrained biLM for embedding text (and, with its softmax, scoring and sampling)."""

    def __init__(self, model: BiLM, config: dict, vocab: Vocab, tokenizer, cache_size: int = 50_000):
        self.model = model.eval()
        self.config = config
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.max_chars = int(config["max_chars"])
        self.has_softmax = bool(config.get("with_softmax", False))
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # LRU of token-layer vectors
        self._pinned: dict[str, torch.Tensor] = {}  # precomputed vocabulary, never evicted
        self.use_cache = True

    # --- loading and saving --------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory: str | Path, cache_size: int = 50_000) -> "Encoder":
        d = Path(directory)
        if not d.is_dir():
            raise PipelineError(f"{d}: encoder directory not found")
        missing = [f for f in REQUIRED if not (d / f).is_file()]
        if missing:
            raise PipelineError(f"{d}: not an exported encoder ({', '.join(missing)} missing; see `elmo export`)")
        try:
            config = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PipelineError(f"{d / 'config.json'}: not valid JSON ({e})") from None
        version = config.get("format_version") if isinstance(config, dict) else None
        if not isinstance(version, int):
            raise PipelineError(f"{d / 'config.json'}: no integer format_version: not an exported encoder")
        if version > FORMAT_VERSION:
            raise PipelineError(f"{d / 'config.json'}: format version {version} is newer than this code "
                                f"({FORMAT_VERSION}); upgrade elmo-pipeline")
        try:
            model_cfg = ModelConfig(**config["model"])
            vocab_size, max_chars = int(config["vocab_size"]), int(config["max_chars"])
            model_cfg.validate(str(d / "config.json"))
            model = BiLM(model_cfg, vocab_size)
        except PipelineError:
            raise
        except Exception as e:  # missing or mistyped fields that the model cannot be built from
            raise PipelineError(f"{d / 'config.json'}: bad or missing architecture field ({type(e).__name__}: {e})") from None
        vocab = Vocab.load(d / "vocab.txt")
        if len(vocab) != vocab_size:
            raise PipelineError(f"{d}: vocab.txt has {len(vocab)} tokens but config.json says {vocab_size}")
        try:
            state = load_file(str(d / "model.safetensors"))
        except Exception as e:  # safetensors raises its own error type for corrupt files
            raise PipelineError(f"{d / 'model.safetensors'}: cannot read weights ({e})") from None
        with_softmax = bool(config.get("with_softmax", False))
        expected = {k: v.shape for k, v in model.state_dict().items() if with_softmax or not k.startswith("softmax.")}
        got = {k: v.shape for k, v in state.items()}
        if set(expected) != set(got):
            extra, lost = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
            raise PipelineError(f"{d / 'model.safetensors'}: weights do not match config.json "
                                f"(missing {lost[:3]}, unexpected {extra[:3]})")
        for k, shape in expected.items():
            if got[k] != shape:
                raise PipelineError(f"{d / 'model.safetensors'}: {k} has shape {tuple(got[k])}, "
                                    f"config.json implies {tuple(shape)}")
        model.load_state_dict(state, strict=False)
        tok = config.get("tokenizer", {})
        lowercase = bool(tok.get("lowercase", False))
        if tok.get("type") == "sentencepiece":
            if not (d / SP_MODEL_FILE).is_file():
                raise PipelineError(f"{d}: config.json names a SentencePiece tokenizer but {SP_MODEL_FILE} is missing")
            tokenizer = SentencePieceTokenizer(d / SP_MODEL_FILE, lowercase=lowercase)
        else:
            tokenizer = WhitespaceTokenizer(lowercase=lowercase)
        if max_chars < 3:
            raise PipelineError(f"{d / 'config.json'}: max_chars must be at least 3, got {max_chars}")
        return cls(model, config, vocab, tokenizer, cache_size)

    def save_pretrained(self, directory: str | Path, readme: str | None = None) -> None:
        """Write this encoder as a self-contained directory (atomically)."""
        with atomic_path(directory, marker="config.json") as tmp:
            tmp.mkdir()
            state = {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()
                     if self.has_softmax or not k.startswith("softmax.")}
            save_file(state, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")
            self.vocab.save(tmp / "vocab.txt")
            if isinstance(self.tokenizer, SentencePieceTokenizer):
                shutil.copy(self.tokenizer.model_file, tmp / SP_MODEL_FILE)
            (tmp / "README.md").write_text(readme or model_card(self.config), encoding="utf-8")

    # --- the token layer, cached ---------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers + 1

    @property
    def dim(self) -> int:
        return 2 * self.model.cfg.projection_dim

    def _encode_tokens(self, tokens: Sequence[str]) -> torch.Tensor:
        """(U,) distinct token strings → (U, P) token-layer vectors, computed by the char CNN."""
        chars = torch.from_numpy(np.stack([token_char_ids(t, self.max_chars) for t in tokens]).astype(np.int64))
        with torch.no_grad():
            return self.model.encoder(trim_chars(chars, self.model.encoder.cnn.max_width))

    def token_vectors(self, tokens: Sequence[str]) -> torch.Tensor:
        """(U,) distinct tokens → (U, P), from the cache where possible (results equal uncached)."""
        if not self.use_cache:
            return self._encode_tokens(tokens)
        missing = [t for t in tokens if t not in self._pinned and t not in self._cache]
        if missing:
            for t, v in zip(missing, self._encode_tokens(missing)):
                self._cache[t] = v
        out = []
        for t in tokens:
            v = self._pinned.get(t)
            if v is None:
                v = self._cache[t]
                self._cache.move_to_end(t)
            out.append(v)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack(out) if out else torch.empty(0, self.model.cfg.projection_dim)

    def precompute_vocab(self, batch: int = 4096) -> None:
        """Encode every vocabulary word once and keep it (never evicted)."""
        words = [t for t in self.vocab.tokens if t not in self._pinned]
        for i in range(0, len(words), batch):
            chunk = words[i : i + batch]
            for t, v in zip(chunk, self._encode_tokens(chunk)):
                self._pinned[t] = v

    # --- embedding -----------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def _as_tokens(self, sentence) -> list[str]:
        if isinstance(sentence, str):
            return self.tokenize(sentence)
        if getattr(self.tokenizer, "lowercase", False):  # the casing the model was trained with
            return [t.lower() for t in sentence]
        return list(sentence)

    def _run(self, batch: list[list[str]]):
        """Sentences (token lists, non-empty) → BiLMOutput over [<S>, tokens..., </S>]."""
        rows, distinct, index, mask = _rows_index(batch)
        vecs = self.token_vectors(distinct)  # (U, P)
        x = vecs[index] * mask[..., None]  # (B, T, P); padding rows are zero
        with torch.no_grad():
            return self.model.contextualize(x, mask), rows

    def _batches(self, sentences: list[list[str]], batch_tokens: int) -> Iterator[list[int]]:
        """Indices of non-empty sentences, sorted by length, cut so rows × (longest + 2) ≤ batch_tokens."""
        order = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
        batch: list[int] = []
        for i in order:
            if batch and (len(batch) + 1) * (len(sentences[i]) + 2) > batch_tokens:
                yield batch
                batch = []
            batch.append(i)
        if batch:
            yield batch

    def embed(self, sentences: Sequence[Sequence[str] | str], batch_tokens: int = 4096) -> list[np.ndarray]:
        """Each sentence (token list, or raw text) → float32 array (L+1, n, 2P); empty → (L+1, 0, 2P).

        Layer 0 is the token layer (duplicated for both directions), layer k the k-th LSTM layer,
        ``[forward ; backward]``. The <S> and </S> positions are removed from the output.
        """
        toks = [self._as_tokens(s) for s in sentences]
        out: list[np.ndarray | None] = [None] * len(toks)
        for idx in self._batches(toks, batch_tokens):
            res, _ = self._run([toks[i] for i in idx])
            stacked = torch.stack(res.layers, dim=1)  # (B, L+1, T, 2P)
            for b, i in enumerate(idx):
                n = len(toks[i])
                out[i] = stacked[b, :, 1 : n + 1].numpy().astype(np.float32, copy=True)
        empty = np.zeros((self.n_layers, 0, self.dim), dtype=np.float32)
        return [o if o is not None else empty.copy() for o in out]

    def layers(self, sentences: Sequence[Sequence[str]]) -> torch.Tensor:
        """Differentiable (for finetuning the biLM): non-empty token lists → (L+1, B, T, 2P), zero
        past each sentence's end, <S>/</S> removed. No token cache (the weights may be changing);
        dropout follows ``self.model.training``."""
        _, distinct, index, mask = _rows_index([self._as_tokens(s) for s in sentences])
        chars = torch.from_numpy(np.stack([token_char_ids(t, self.max_chars) for t in distinct]).astype(np.int64))
        B, T = mask.shape
        device = next(self.model.parameters()).device
        mask = mask.to(device)
        x = self.model.encode(chars.to(device), index.to(device)) * mask[..., None]  # (B, T, P)
        res = self.model.contextualize(x, mask)
        inner = mask.clone()
        inner[:, 0] = False
        inner[torch.arange(B), mask.sum(1) - 1] = False  # the </S> of each row
        stacked = torch.stack(res.layers) * inner[None, :, :, None]  # (L+1, B, T, 2P)
        return stacked[:, :, 1 : T - 1]

    def embed_mixed(self, sentences, scalar_mix, batch_tokens: int = 4096) -> list[np.ndarray]:
        """Apply a ScalarMix-like callable (list of L+1 (1, n, 2P) tensors → (1, n, 2P)) per sentence."""
        outs = []
        for layers in self.embed(sentences, batch_tokens):
            tensors = [torch.from_numpy(layer)[None] for layer in layers]
            with torch.no_grad():
                outs.append(scalar_mix(tensors)[0].numpy())
        return outs

    # --- language-model uses (need the softmax) ------------------------------------------------

    def _need_softmax(self, what: str) -> None:
        if not self.has_softmax:
            raise PipelineError(f"{what} needs the softmax weights: export with `elmo export --with-softmax`")

    def _target_ids(self, tokens: Sequence[str]) -> list[int]:
        return [self.vocab.id(t) for t in tokens]

    def lm_sums(self, sentences: Iterable[Sequence[str] | str], batch_tokens: int = 4096) -> dict:
        """Summed forward/backward NLL (exact softmax), predicted tokens and OOV tokens."""
        self._need_softmax("Language-model scoring")
        toks = [self._as_tokens(s) for s in sentences]
        f_sum = b_sum = 0.0
        n = oov = 0
        for idx in self._batches(toks, batch_tokens):
            res, rows = self._run([toks[i] for i in idx])
            B, T = res.mask.shape
            fwd = torch.full((B, T), -100, dtype=torch.long)
            bwd = torch.full((B, T), -100, dtype=torch.long)
            for b, r in enumerate(rows):
                ids = torch.tensor(self._target_ids(r))
                fwd[b, : len(r) - 1] = ids[1:]
                bwd[b, 1 : len(r)] = ids[:-1]
                oov += int((ids[1:-1] == UNK_ID).sum())
                n += len(r) - 1
            with torch.no_grad():
                f, bw = self.model.lm_nll(res, fwd, bwd)
            f_sum += float(f)
            b_sum += float(bw)
        return {"forward_nll": f_sum, "backward_nll": b_sum, "tokens": n, "oov_tokens": oov}

    def generate(self, prompt: Sequence[str] | str = (), max_tokens: int = 30, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0) -> list[str]:
        """Sample a continuation from the forward LM; stops at </S>. Emits only vocabulary words."""
        self._need_softmax("Sampling")
        if temperature <= 0:
            raise PipelineError(f"temperature must be positive, got {temperature}")
        if top_k is not None and top_k < 1:
            raise PipelineError(f"top-k must be at least 1, got {top_k}")
        if max_tokens < 0:
            raise PipelineError(f"max-tokens must be >= 0, got {max_tokens}")
        gen = torch.Generator().manual_seed(seed)
        tokens = [BOS_TOKEN, *self._as_tokens(prompt)]
        banned = torch.tensor([PAD_ID, UNK_ID, BOS_ID])
        out: list[str] = []
        for _ in range(max_tokens):
            vecs = self.token_vectors(list(dict.fromkeys(tokens)))
            where = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
            x = vecs[torch.tensor([where[t] for t in tokens])][None]  # (1, t, P)
            with torch.no_grad():
                h = self.model.forward_lstm(x)[-1][0, -1]  # (P,) forward LM state at the last token
                logits = self.model.softmax.log_probs(h) / temperature  # (V,)
            logits[banned] = float("-inf")
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits[logits < kth] = float("-inf")
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            word = self.vocab.tokens[nxt]
            if word == EOS_TOKEN:
                break
            out.append(word)
            tokens.append(word)
        return out


def model_card(config: dict) -> str:
    t = config.get("training", {})
    m = config["model"]
    lines = [
        "# ELMo-style encoder (elmo-pipeline)",
        "",
        "A character-CNN bidirectional language model exported by `elmo export`.",
        "",
        "| | |",
        "|---|---|",
        f"| training corpus | {', '.join(t.get('sources', [])) or 'unknown'} |",
        f"| presets | {'unknown' if t.get('presets') is None else ', '.join(t['presets']) or 'none (defaults)'} |",
        f"| training tokens / sentences | {t.get('train_tokens', '?'):,} / {t.get('train_sentences', '?'):,} |"
        if isinstance(t.get("train_tokens"), int) else "| training tokens | unknown |",
        f"| tokenizer | {config.get('tokenizer', {}).get('type', '?')}, lowercase={config.get('tokenizer', {}).get('lowercase')} |",
        f"| vocabulary | {config['vocab_size']:,} |",
        f"| architecture | char CNN {m['filters']}, {m['n_highway']} highway, P={m['projection_dim']}, "
        f"H={m['cell_dim']}, L={m['n_layers']}, softmax {m['softmax']} |",
        f"| parameters (exported) | {t.get('parameters_exported', '?'):,} |" if isinstance(t.get("parameters_exported"), int) else "",
        f"| training steps | {t.get('steps', '?')} |",
        f"| valid perplexity (fwd / bwd / avg) | {_ppl(t.get('valid'))} |",
        f"| test perplexity (fwd / bwd / avg) | {_ppl(t.get('test'), 'test_')} |",
        f"| softmax included | {config.get('with_softmax', False)} |",
        "",
        "## Use",
        "",
        "```python",
        "from pipeline import Encoder",
        'enc = Encoder.from_pretrained("path/to/this/dir")',
        'layers = enc.embed([["The", "cat", "sat", "."]])[0]   # (L+1, n_tokens, 2P)',
        "```",
        "",
        "or `elmo embed input.txt --encoder path/to/this/dir --out vectors.h5`.",
        "",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _ppl(d: dict | None, prefix: str = "") -> str:
    if not d:
        return "not measured"
    try:
        return " / ".join(f"{d[prefix + k]:.2f}" for k in ("forward_ppl", "backward_ppl", "average_ppl"))
    except KeyError:
        return "not measured"


def export_encoder(model_dir: str | Path, out_dir: str | Path, prepared_dir: str | Path | None = None,
                   with_softmax: bool = False, test_metrics: dict | None = None,
                   presets: list[str] | None = None) -> Path:
    """Turn a trained biLM (``models/pretrain/best`` or a checkpoint) into an encoder directory."""
    from pipeline.data.prepared import PreparedData
    from pipeline.train.checkpoint import load_bilm

    model, train_cfg = load_bilm(model_dir)
    prepared_dir = Path(prepared_dir or train_cfg.get("prepared_dir") or "data/prepared")
    data = PreparedData(prepared_dir)
    if len(data.vocab) != train_cfg["vocab_size"]:
        raise PipelineError(f"{model_dir}: trained with {train_cfg['vocab_size']} words but {prepared_dir} has "
                            f"{len(data.vocab)}; pass the prepared data it was trained on (--prepared)")
    meta = data.meta
    exported = sum(v.numel() for k, v in model.state_dict().items() if with_softmax or not k.startswith("softmax."))
    config = {
        "format_version": FORMAT_VERSION,
        "model": dataclasses.asdict(model.cfg),
        "vocab_size": len(data.vocab),
        "max_chars": data.max_chars,
        "char_ids": meta["char_ids"],
        "specials": meta["specials"],
        "tokenizer": {"type": meta["tokenizer"], "lowercase": meta["lowercase"],
                      "model_file": meta.get("tokenizer_model")},
        "with_softmax": with_softmax,
        "training": {
            "sources": meta.get("sources", []),
            "presets": presets,
            "train_tokens": meta["stats"]["train_tokens"],
            "train_sentences": meta["stats"]["train_sentences"],
            "steps": train_cfg.get("step"),
            "valid": train_cfg.get("valid"),
            "test": test_metrics,
            "parameters_exported": exported,
        },
    }
    tokenizer = (SentencePieceTokenizer(prepared_dir / SP_MODEL_FILE, meta["lowercase"])
                 if meta["tokenizer"] == "sentencepiece" else WhitespaceTokenizer(meta["lowercase"]))
    Encoder(model, config, data.vocab, tokenizer).save_pretrained(out_dir)
    return Path(out_dir)


def _read_lines(path: Path, encoding_errors: str) -> Iterator[tuple[int, str]]:
    """(0-based line number, text) of a text file (plain or .gz); bad UTF-8 → error naming file and line."""
    from pipeline.data.corpus import ReadStats, _read_file

    path = Path(path)
    if path.is_dir():
        raise PipelineError(f"{path}: is a directory; give one text file")
    if not path.is_file():
        raise PipelineError(f"{path}: input file not found")
    for line in _read_file(path, encoding_errors, ReadStats()):
        yield line.lineno - 1, line.text


def select_layers(layers: np.ndarray, mode: str) -> np.ndarray:
    """(L+1, n, 2P) → all: unchanged; top: (n, 2P) last layer; average: (n, 2P) mean of layers."""
    if mode == "all":
        return layers
    if mode == "top":
        return layers[-1]
    return layers.mean(axis=0)


def embed_file(encoder: Encoder, input_path: str | Path, out_path: str | Path, layers: str = "all",
               batch_tokens: int = 4096, chunk_lines: int = 1000, encoding_errors: str = "error",
               progress: bool = True) -> int:
    """Embed every line of a text file into HDF5, one dataset per line keyed by its 0-based number.

    Streams ``chunk_lines`` lines at a time, so memory stays flat for files of any size. An empty
    line gets an empty dataset, so line numbers stay aligned. Returns the number of lines.
    """
    import h5py

    input_path = Path(input_path)
    total = None
    if progress and input_path.is_file() and input_path.suffix != ".gz":
        with open(input_path, "rb") as f:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit=" lines", desc="embed", mininterval=1.0, disable=None)  # off without a TTY
    n = 0
    try:
        n = _embed_into(encoder, input_path, out_path, layers, batch_tokens, chunk_lines, encoding_errors, bar)
    finally:
        if bar is not None:
            bar.close()
    return n


def _embed_into(encoder, input_path, out_path, layers, batch_tokens, chunk_lines, encoding_errors, bar) -> int:
    import h5py

    n = 0
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs["layers"] = layers
            h5.attrs["n_layers"] = encoder.n_layers
            h5.attrs["dim"] = encoder.dim
            chunk: list[tuple[int, str]] = []
            lines = _read_lines(input_path, encoding_errors)
            while True:
                chunk = [x for _, x in zip(range(chunk_lines), lines)]
                if not chunk:
                    break
                vecs = encoder.embed([encoder.tokenize(text) for _, text in chunk], batch_tokens)
                for (i, _), v in zip(chunk, vecs):
                    h5.create_dataset(str(i), data=select_layers(v, layers))
                n += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    return n
