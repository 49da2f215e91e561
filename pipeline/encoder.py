"""The Encoder inference API: load an exported encoder directory, embed text, cache token vectors.

::

    from pipeline import Encoder
    enc = Encoder.from_pretrained("models/encoder")
    layers = enc.embed([["The", "cat", "sat", "."], ["Hello", "!"]])   # list of (L+1, n, 2P) arrays

An encoder directory (written by :mod:`pipeline.export` or :meth:`Encoder.save_pretrained`)::

    config.json        kind "encoder", format version, architecture, vocabulary and char settings,
                       tokenizer, whether the softmax is included, training summary
    model.safetensors  weights (token encoder + LSTM stacks [+ softmax with --with-softmax])
    vocab.txt          the softmax vocabulary (token<TAB>count); absent when vocab_size is 0 (an encoder
                       without a softmax vocabulary, e.g. imported ELMo weights: it embeds, no LM use)
    tokenizer.model    the SentencePiece model, when the corpus was tokenized with one
    README.md          model card: data, size, metrics, how to load

Embeddings are deterministic: no state is carried across sentences or calls, and sentences are
batched by length internally, so a sentence's vectors do not depend on its batch companions.
Language-model uses (scoring, sampling) of an encoder with its softmax live in :mod:`pipeline.lm`.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.bilm.model import BiLM, build_bilm
from pipeline.cpu import bf16_pays
from pipeline.data.batching import cut_sorted
from pipeline.data.chars import BOS_TOKEN, EOS_TOKEN, padded_char_ids, token_char_ids
from pipeline.data.lines import ReadStats, input_chunks
from pipeline.data.tokenizers import SP_MODEL_FILE, SentencePieceTokenizer, make_tokenizer
from pipeline.data.vocab import Vocab
from pipeline.errors import PipelineError
from pipeline.io import (
    CONFIG_FILE,
    MARK_KEY,
    WEIGHTS_FILE,
    atomic_path,
    check_output_file,
    check_weights,
    is_stdio,
    output_lock,
    read_model_config,
    read_weights,
    state_dict_cpu,
    write_model_dir,
)
from pipeline.progress import progress_bar

ENCODER_FORMAT = 1
ENCODER_KIND = "encoder"
EMBED_MARK = "elmo-pipeline embed"  # the HDF5 root attribute `written_by` of `elmo embed`: replaced only by it
REQUIRED = (CONFIG_FILE, WEIGHTS_FILE)
ONNX_FILE, ONNX_REPORT = "model.onnx", "onnx.json"  # an ONNX export's graph and its parity report
# every name an encoder directory may hold: a re-export replaces it whole, so it refuses one with others
ENCODER_FILES = (*REQUIRED, "vocab.txt", SP_MODEL_FILE, "README.md", ONNX_FILE, ONNX_REPORT)


def _rows_index(batch: list[list[str]]):
    """Token lists → (distinct tokens (U,) of the rows [<S>, ..., </S>], index (B, T) into them, mask (B, T))."""
    rows = [[BOS_TOKEN, *s, EOS_TOKEN] for s in batch]
    distinct = list(dict.fromkeys(t for r in rows for t in r))
    where = {t: i for i, t in enumerate(distinct)}
    B, T = len(rows), max(len(r) for r in rows)
    index = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, r in enumerate(rows):
        index[b, : len(r)] = torch.tensor([where[t] for t in r])
        mask[b, : len(r)] = True
    return distinct, index, mask


class Encoder:
    """A pretrained biLM for embedding text (and, with its softmax, scoring and sampling)."""

    runtime = "pytorch"  # what runs the biLM ("onnxruntime": an ONNX export, :class:`OnnxEncoder`)

    def __init__(
        self, model: BiLM, config: dict, vocab: Vocab | None, tokenizer, cache_size: int = 50_000, bf16: bool = False
    ):
        self.model = model.eval()
        self.config = config
        self.vocab = vocab
        self.tokenizer = tokenizer
        self.max_chars = int(config["max_chars"])
        self.has_softmax = bool(config.get("with_softmax", False))
        self.cache_size = cache_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()  # LRU of token-layer vectors
        self._pinned: dict[str, torch.Tensor] = {}  # precomputed vocabulary, never evicted
        self.source: Path | None = None  # the directory it was loaded from, for messages
        self._bf16 = bf16

    @property
    def bf16(self) -> bool:
        """bf16 matmuls (autocast; fp32 weights, cells and outputs) in the token encoder and the
        sequence body: faster on CPUs with AVX512-BF16 and on GPUs; vectors differ from fp32 by bf16
        rounding (measured in bench/embed_throughput.py). Changing it empties the token cache."""
        return self._bf16

    @bf16.setter
    def bf16(self, on: bool) -> None:
        if on != self._bf16:
            self._bf16 = on
            self._cache.clear()
            if self._pinned:
                self._pinned.clear()
                self.precompute_vocab()

    # --- loading and saving --------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, cache_size: int = 50_000, bf16: bool = False, runtime: str = "auto"
    ) -> Encoder:
        """The encoder in ``directory``. ``cache_size``: token-layer vectors kept for known words (0:
        none); ``bf16``: bf16 autocast for the token encoder and the sequence body (faster on CPUs with
        AVX512-BF16 and GPUs). Loaded for use: its weights do not require gradients
        (``enc.model.requires_grad_(True)`` before training them). ``runtime``: ``"auto"`` runs the
        biLM in ONNX Runtime when the directory is an ONNX export (holds ``model.onnx``), else in
        PyTorch; ``"torch"`` or ``"onnx"`` choose."""
        d = Path(directory)
        config = read_model_config(d, ENCODER_KIND, ENCODER_FORMAT, hint=" (see `elmo export`)")
        missing = [f for f in REQUIRED if not (d / f).is_file()]
        if missing:
            raise PipelineError(f"{d}: not an exported encoder ({', '.join(missing)} missing; see `elmo export`)")
        model = build_bilm(config, str(d / CONFIG_FILE))
        with_softmax = bool(config.get("with_softmax", False))
        vocab = _load_vocab(d, model.vocab_size, with_softmax)
        state = read_weights(d)
        check_weights(
            d / WEIGHTS_FILE,
            state,
            {k: v for k, v in model.state_dict().items() if with_softmax or not k.startswith("softmax.")},
        )
        model.load_state_dict(state, strict=False)
        max_chars = int(config.get("max_chars", 0))
        if max_chars < 3:
            raise PipelineError(f"{d / CONFIG_FILE}: max_chars must be at least 3, got {max_chars}")
        model.requires_grad_(False)  # loaded for use (kept weights: pipeline.bilm.lstmp.inference_weights)
        encoder = cls(model, config, vocab, _load_tokenizer(d, config.get("tokenizer", {})), cache_size, bf16)
        encoder.source = d
        if runtime == "onnx" or (runtime == "auto" and (d / ONNX_FILE).is_file()):
            return OnnxEncoder(encoder, d / ONNX_FILE)
        return encoder

    def save_pretrained(self, directory: str | Path, readme: str | None = None) -> None:
        """Write this encoder as a self-contained directory (atomically)."""

        def side_files(tmp: Path) -> None:
            if self.vocab is not None:
                self.vocab.save(tmp / "vocab.txt")
            if isinstance(self.tokenizer, SentencePieceTokenizer):
                shutil.copy(self.tokenizer.model_file, tmp / SP_MODEL_FILE)
            (tmp / "README.md").write_text(readme or encoder_card(self.config), encoding="utf-8")

        skip = () if self.has_softmax else ("softmax.",)
        config, weights = self.config, state_dict_cpu(self.model, skip)
        write_model_dir(directory, ENCODER_KIND, config, weights, side_files, own=ENCODER_FILES)

    # --- the token layer, cached ---------------------------------------------------------------

    @property
    def n_layers(self) -> int:
        return self.model.n_layers

    @property
    def dim(self) -> int:
        return 2 * self.model.cfg.projection_dim

    def _encode_tokens(self, tokens: Sequence[str]) -> torch.Tensor:
        """(U,) distinct token strings → (U, P) token-layer vectors, computed by the char CNN."""
        chars = torch.from_numpy(np.stack([token_char_ids(t, self.max_chars) for t in tokens]).astype(np.int64))
        on = self.bf16 and bf16_pays(chars.device.type)
        with torch.no_grad(), torch.autocast(chars.device.type, dtype=torch.bfloat16, enabled=on):
            return self.model.token_encoder.by_length(chars).float()

    def token_vectors(self, tokens: Sequence[str]) -> torch.Tensor:
        """(U,) distinct tokens → (U, P), from the cache where possible (results equal uncached)."""
        if not self.cache_size and not self._pinned:
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
        """Encode every vocabulary word once and keep it (never evicted); nothing without a vocabulary."""
        words = [t for t in (self.vocab.tokens if self.vocab is not None else []) if t not in self._pinned]
        for i in range(0, len(words), batch):
            chunk = words[i : i + batch]
            for t, v in zip(chunk, self._encode_tokens(chunk)):
                self._pinned[t] = v

    # --- embedding -----------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def as_tokens(self, sentence) -> list[str]:
        if isinstance(sentence, str):
            return self.tokenize(sentence)
        if getattr(self.tokenizer, "lowercase", False):  # the casing the model was trained with
            return [t.lower() for t in sentence]
        return list(sentence)

    def run(self, batch: list[list[str]]):
        """Sentences (token lists, non-empty) → BiLMOutput over [<S>, tokens..., </S>]."""
        distinct, index, mask = _rows_index(batch)
        vecs = self.token_vectors(distinct)  # (U, P)
        x = vecs[index] * mask[..., None]  # (B, T, P); padding rows are zero
        on = self.bf16 and bf16_pays(x.device.type)
        with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=on):
            return self.model.contextualize(x, mask)

    def batches(self, sentences: list[list[str]], batch_tokens: int) -> list[list[int]]:
        """Indices of non-empty sentences, sorted by length, cut so rows × (longest + 2) ≤ batch_tokens."""
        order = sorted((i for i, s in enumerate(sentences) if s), key=lambda i: len(sentences[i]))
        return cut_sorted(order, [len(s) for s in sentences], max_tokens=batch_tokens)

    def embed(
        self, sentences: Sequence[Sequence[str] | str], batch_tokens: int = 4096, progress: str | None = None
    ) -> list[np.ndarray]:
        """Each sentence (token list, or raw text) → float32 array (L+1, n, 2P); empty → (L+1, 0, 2P).

        Layer 0 is the token layer (duplicated for both directions), layer k the k-th LSTM layer,
        ``[forward ; backward]``. The <S> and </S> positions are removed from the output.
        ``progress``: a progress bar with this description (none by default).
        """
        toks = [self.as_tokens(s) for s in sentences]
        out: list[np.ndarray | None] = [None] * len(toks)
        with progress_bar(len(toks), progress or "", " sentences", progress is not None) as bar:
            for idx in self.batches(toks, batch_tokens):
                res = self.run([toks[i] for i in idx])
                stacked = torch.stack(res.layers, dim=1)  # (B, L+1, T, 2P)
                for b, i in enumerate(idx):
                    n = len(toks[i])
                    out[i] = stacked[b, :, 1 : n + 1].numpy().astype(np.float32, copy=True)
                bar.update(len(idx))
        empty = np.zeros((self.n_layers, 0, self.dim), dtype=np.float32)
        return [o if o is not None else empty.copy() for o in out]

    def layers(self, sentences: Sequence[Sequence[str]]) -> torch.Tensor:
        """Differentiable (for finetuning the biLM): non-empty token lists → (L+1, B, T, 2P), zero
        past each sentence's end, <S>/</S> removed. No token cache (the weights may be changing);
        dropout follows ``self.model.training``."""
        distinct, index, mask = _rows_index([self.as_tokens(s) for s in sentences])
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

    # --- language-model uses (need the softmax): see pipeline.lm ---------------------------------

    def lm_sums(self, sentences, batch_tokens: int = 4096) -> dict:
        from pipeline.lm import lm_sums

        return lm_sums(self, sentences, batch_tokens)

    def generate(
        self, prompt=(), max_tokens: int = 30, temperature: float = 1.0, top_k: int | None = None, seed: int = 0
    ) -> list[str]:
        from pipeline.lm import generate

        return generate(self, prompt, max_tokens, temperature, top_k, seed)


STOPS = {"max_minutes": "the time budget (max_minutes)", "steps": "the step budget (max_steps / epochs)"}


def encoder_card(config: dict) -> str:
    t = config.get("training", {})
    m = config["model"]
    tokenizer = config.get("tokenizer", {})
    lines = [
        "# ELMo-style encoder (elmo-pipeline)",
        "",
        _origin(t),
        "",
        "| | |",
        "|---|---|",
        f"| training corpus | {', '.join(t.get('sources', [])) or 'unknown'} |",
        f"| presets | {'unknown' if t.get('presets') is None else ', '.join(t['presets']) or 'none (defaults)'} |",
        f"| training tokens / sentences | {t.get('train_tokens', '?'):,} / {t.get('train_sentences', '?'):,} |"
        if isinstance(t.get("train_tokens"), int)
        else "| training tokens | unknown |",
        f"| tokenizer | {tokenizer.get('type', '?')}, lowercase={tokenizer.get('lowercase')} |",
        f"| vocabulary | {config['vocab_size']:,} |"
        if config["vocab_size"]
        else "| vocabulary | none (no softmax: embeds and finetunes; `elmo lm-score` / `elmo generate` need one) |",
        f"| architecture | char CNN {m['filters']}, {m['n_highway']} highway, P={m['projection_dim']}, "
        f"{m.get('body', 'lstm')} body, H={m['cell_dim']}, L={m['n_layers']}, clip cell/projection "
        f"{m.get('cell_clip')}/{m.get('proj_clip')}, softmax {m['softmax'] if config['vocab_size'] else 'none'} |",
        f"| parameters (exported) | {t.get('parameters_exported', '?'):,} |"
        if isinstance(t.get("parameters_exported"), int)
        else None,
        f"| training steps | {t.get('steps', '?')} |",
        f"| valid perplexity (fwd / bwd / avg) | {_ppl(t.get('valid'))} |",
        f"| test perplexity (fwd / bwd / avg) | {_ppl(t.get('test'), 'test_')} |",
        f"| softmax included | {config.get('with_softmax', False)} |",
        f"| training stopped by | {STOPS.get(t['stopped_by'], t['stopped_by'])} |" if t.get("stopped_by") else None,
        f"| made | {t['date']} by `{t['command']}` |" if t.get("date") else None,
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
        "## Intended use and limitations",
        "",
        "Contextual word vectors for text like the training corpus above (its language, domain and",
        "tokenization), as input features for taggers and classifiers (`elmo finetune --encoder`).",
        "Vectors of text far from that corpus (another language or domain, other tokenization) are",
        "less useful; check on a labelled sample of yours. A language model reproduces the biases of",
        "its training text; do not use its vectors alone for decisions about people.",
        "",
        "## Licence",
        "",
        "The weights follow the licence of the training corpus; elmo-pipeline, which made them, is MIT.",
        "",
    ]
    return "\n".join(line for line in lines if line is not None) + "\n"


def _origin(training: dict) -> str:
    src = training.get("imported_from")
    if not src:
        return "A character-CNN bidirectional language model exported by `elmo export`."
    return (
        f"ELMo weights converted by `elmo import-elmo` from `{src['options']}` and `{src['weights']}` "
        f"(sha256 {src['weights_sha256']}). Text is split on whitespace and kept cased, as ELMo was trained."
    )


def _ppl(d: dict | None, prefix: str = "") -> str:
    if not d:
        return "not measured"
    try:
        return " / ".join(f"{d[prefix + k]:.2f}" for k in ("forward_ppl", "backward_ppl", "average_ppl"))
    except KeyError:
        return "not measured"


def _load_vocab(d: Path, vocab_size: int, with_softmax: bool) -> Vocab | None:
    """vocab.txt, checked against config.json; None for an encoder without one (vocab_size 0)."""
    if vocab_size == 0:
        if with_softmax:
            raise PipelineError(f"{d / CONFIG_FILE}: with_softmax is true but vocab_size is 0")
        return None
    if not (d / "vocab.txt").is_file():
        raise PipelineError(f"{d}: not an exported encoder (vocab.txt missing; config.json says {vocab_size} words)")
    vocab = Vocab.load(d / "vocab.txt")
    if len(vocab) != vocab_size:
        raise PipelineError(f"{d}: vocab.txt has {len(vocab)} tokens but config.json says {vocab_size}")
    return vocab


def _load_tokenizer(d: Path, tok: dict):
    lowercase = bool(tok.get("lowercase", False))
    kind = tok.get("type") or "whitespace"
    if kind == "sentencepiece" and not (d / SP_MODEL_FILE).is_file():
        raise PipelineError(f"{d}: config.json names a SentencePiece tokenizer but {SP_MODEL_FILE} is missing")
    return make_tokenizer(kind, lowercase, d / SP_MODEL_FILE)


def select_layers(layers: np.ndarray, mode: str) -> np.ndarray:
    """(L+1, n, 2P) → all: unchanged; top: (n, 2P) last layer; average: (n, 2P) mean of layers."""
    if mode == "all":
        return layers
    if mode == "top":
        return layers[-1]
    return layers.mean(axis=0)


def embed_file(
    encoder: Encoder,
    input_path: str | Path,
    out_path: str | Path,
    layers: str = "all",
    batch_tokens: int = 4096,
    chunk_lines: int = 1000,
    encoding_errors: str = "error",
    progress: bool = True,
    stats: ReadStats | None = None,
) -> int:
    """Embed every line of a text file into HDF5, one dataset per line keyed by its 0-based number.

    Streams ``chunk_lines`` lines at a time, so memory stays flat for files of any size. An empty
    line gets an empty dataset, so line numbers stay aligned. Returns the number of lines;
    ``stats`` (a :class:`ReadStats`) counts replaced lines and a removed byte-order mark.
    """
    if is_stdio(out_path):
        raise PipelineError("--out -: HDF5 cannot be written to standard output; give a file path (e.g. out.h5)")
    input_path = Path(input_path)
    total = None
    if progress and input_path.is_file() and input_path.suffix != ".gz":
        with open(input_path, "rb") as f:
            total = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    bar = None
    if progress:
        bar = progress_bar(total, "embed", " lines")
    n = 0
    try:
        with output_lock(out_path):  # one run per output file
            n = _embed_into(
                encoder, input_path, out_path, layers, batch_tokens, chunk_lines, encoding_errors, bar, stats
            )
    finally:
        if bar is not None:
            bar.close()
    return n


def _is_embedding_file(path: Path) -> bool:
    import h5py

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as h5:
            marked = h5.attrs.get(MARK_KEY, EMBED_MARK) == EMBED_MARK  # files of earlier versions: unmarked
            return marked and "n_layers" in h5.attrs and "layers" in h5.attrs
    except (OSError, ValueError):
        return False


def _embed_into(encoder, input_path, out_path, layers, batch_tokens, chunk_lines, encoding_errors, bar, stats) -> int:
    import h5py

    n = 0
    check_output_file(out_path, _is_embedding_file, "an HDF5 file of `elmo embed`")
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs[MARK_KEY] = EMBED_MARK
            h5.attrs["layers"] = layers
            h5.attrs["n_layers"] = encoder.n_layers
            h5.attrs["dim"] = encoder.dim
            for chunk in input_chunks(input_path, chunk_lines, encoding_errors, stats):
                vecs = encoder.embed([encoder.tokenize(text) for _, text in chunk], batch_tokens)
                for (i, _), v in zip(chunk, vecs):
                    h5.create_dataset(str(i), data=select_layers(v, layers))
                n += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    return n


class OnnxEncoder(Encoder):
    """An encoder whose biLM runs in ONNX Runtime (an ``elmo export --format onnx`` directory's
    ``model.onnx``; :mod:`pipeline.bilm.exported` describes the graph): the same ``embed``,
    ``lm_sums`` and batching as :class:`Encoder`, one graph call per batch. Every position's
    characters go through the token encoder (no token cache); ``bf16`` does not apply."""

    runtime = "onnxruntime"

    def __init__(self, base: Encoder, graph: Path):
        self.__dict__.update(base.__dict__)
        self.session = onnx_session(graph)
        self.graph = graph

    def token_vectors(self, tokens: Sequence[str]) -> torch.Tensor:
        chars = padded_char_ids([[t] for t in tokens], self.max_chars)  # (U, 1, C)
        ones = np.ones(len(tokens), dtype=np.int64)
        layers = self.session.run(None, {"chars": chars, "lengths": ones})[0]  # (L+1, U, 1, 2P)
        return torch.from_numpy(layers[0, :, 0, : self.dim // 2].copy())

    def precompute_vocab(self, batch: int = 4096) -> None:
        """Nothing to precompute: the graph encodes every position."""

    def run(self, batch: list[list[str]]):
        """Sentences (token lists, non-empty) → BiLMOutput over [<S>, tokens..., </S>]."""
        from pipeline.bilm.model import BiLMOutput

        chars, lengths = bilm_graph_inputs(batch, self.max_chars)
        layers = torch.from_numpy(self.session.run(None, {"chars": chars, "lengths": lengths})[0])  # (L+1, B, T, 2P)
        mask = torch.arange(chars.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
        P = layers.shape[-1] // 2
        return BiLMOutput(list(layers), layers[-1][..., :P], layers[-1][..., P:], mask)


def bilm_graph_inputs(sentences: Sequence[Sequence[str]], max_chars: int) -> tuple[np.ndarray, np.ndarray]:
    """The ONNX biLM graph's inputs for non-empty token lists: ``chars`` (B, T, C) of the rows
    ``[<S>, tokens..., </S>]`` and their ``lengths`` (B,), both int64."""
    rows = [[BOS_TOKEN, *s, EOS_TOKEN] for s in sentences]
    return padded_char_ids(rows, max_chars), np.array([len(r) for r in rows], dtype=np.int64)


def onnx_session(graph: Path):
    """An ONNX Runtime session of ``graph`` on the CPU, with PyTorch's thread count."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise PipelineError(
            f"{graph}: running an ONNX export needs ONNX Runtime: pip install 'elmo-pipeline[onnx]' (or onnxruntime)"
        ) from None
    if not graph.is_file():
        raise PipelineError(f"{graph}: not found: this encoder is no ONNX export (see `elmo export --format onnx`)")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # a damaged or foreign file: onnxruntime's own exception types
        raise PipelineError(f"{graph}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
