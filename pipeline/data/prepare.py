"""The prepare stage: raw corpus → tokenized splits, vocabulary, character ids, shards, stats.

Passes (each streams, so memory grows with the number of distinct tokens, not the corpus):

1. (SentencePiece only) read up to ``sp_max_sentences`` train sentences and train the model.
2. Read every source line, tokenize, cut over-long sentences, assign it to a split, append it
   to ``{split}.txt`` and count train tokens.
3. Build the vocabulary from the train counts.
4. Re-read ``{split}.txt``, map tokens to type ids and write the shards.

Everything is written into a temporary directory that replaces the output directory only when
all passes succeeded: an error never leaves a half-written ``data/prepared``.

Bad input and what happens (the README repeats this):

* missing file / empty glob / non-gzip ``.gz`` → one-line error naming the path;
* invalid UTF-8 → error naming file and line (``encoding_errors: error``) or U+FFFD, counted;
* blank lines → skipped, counted (``blank_lines``);
* a line longer than ``max_sentence_length`` tokens → cut into pieces, counted;
* an empty corpus or an empty split → one-line error saying which.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.config import PrepareConfig
from pipeline.data.chars import BOS_CHAR, BOW_CHAR, EOS_CHAR, EOW_CHAR, N_CHAR_IDS, PAD_CHAR, char_table
from pipeline.data.corpus import read_corpus
from pipeline.data.lines import Line, ReadStats
from pipeline.data.prepared import PREPARED_FORMAT, SPLITS, ShardWriter
from pipeline.data.tokenizers import (
    SP_MODEL_FILE,
    SentencePieceTokenizer,
    count_glued,
    glued_warning,
    make_tokenizer,
    train_sentencepiece,
)
from pipeline.data.vocab import PAD_ID, SPECIALS, Vocab
from pipeline.errors import PipelineError
from pipeline.io import atomic_path, check_replaceable, check_run_paths, output_lock, remove_stale_temporaries
from pipeline.progress import progress_bar

# every name a prepared-data directory may hold: a re-run replaces it whole, so it refuses one with others
PREPARED_FILES = (
    *SPLITS,
    *(f"{s}.txt" for s in SPLITS),
    "meta.json",
    "vocab.txt",
    "extra_types.txt",
    "char_ids.npy",
    SP_MODEL_FILE,
)

SENTENCE_END_TOKENS = {".", "!", "?"}


class _SplitAssigner:
    """Deterministic split per sentence index from a seeded stream of uniforms (block-drawn)."""

    def __init__(self, seed: int, valid_fraction: float, test_fraction: float):
        self.rng = np.random.default_rng(seed)
        self.valid, self.test = valid_fraction, test_fraction
        self.block: np.ndarray = np.empty(0)
        self.pos = 0

    def __call__(self) -> str:
        if self.pos == len(self.block):
            self.block, self.pos = self.rng.random(65536), 0
        u = self.block[self.pos]
        self.pos += 1
        if u < self.valid:
            return "valid"
        if u < self.valid + self.test:
            return "test"
        return "train"


def _progress(iterable, desc: str, enabled: bool):
    if not enabled:
        return iterable
    return progress_bar(None, desc, " lines", iterable=iterable)


class _Sources:
    """Iterates ``(split, line)`` over the configured sources, with split assignment."""

    def __init__(self, cfg: PrepareConfig, read_stats: ReadStats):
        self.cfg = cfg
        self.read_stats = read_stats

    def _read(self, spec: str) -> Iterator[Line]:
        return read_corpus(spec, self.cfg.encoding_errors, self.cfg.hf_streaming, self.read_stats)

    def __iter__(self) -> Iterator[tuple[str, Line]]:
        cfg = self.cfg
        assign = _SplitAssigner(
            cfg.split_seed,
            cfg.valid_fraction if cfg.valid is None else 0.0,
            cfg.test_fraction if cfg.test is None else 0.0,
        )
        for line in self._read(cfg.corpus):
            if line.text.strip():
                yield assign(), line
            else:
                yield "blank", line
        for split, spec in (("valid", cfg.valid), ("test", cfg.test)):
            if spec is not None:
                for line in self._read(spec):
                    yield (split if line.text.strip() else "blank"), line


def _sentences(text: str, split_sentences: bool) -> Iterator[str]:
    """A line, or its sentences when ``split_sentences`` (cut after . ! ? tokens)."""
    if not split_sentences:
        yield text
        return
    current: list[str] = []
    for word in text.split():
        current.append(word)
        if word in SENTENCE_END_TOKENS:
            yield " ".join(current)
            current = []
    if current:
        yield " ".join(current)


def prepare_corpus(
    cfg: PrepareConfig,
    out_dir: str | Path,
    progress: bool = True,
    vocab: Vocab | None = None,
    sp_model: Path | None = None,
) -> dict:
    """Run the prepare stage into ``out_dir`` (replaced atomically); return the stats dict.

    ``vocab`` (and ``sp_model``, a SentencePiece model file, with ``tokenizer: sentencepiece``): use
    an existing model's vocabulary and tokenizer instead of building them (domain adaptation: the
    softmax must keep its rows; words outside it are <UNK> targets, their characters still read)."""
    out_dir = Path(out_dir)
    check_run_paths({"--out": out_dir}, {f"prepare.{k}": getattr(cfg, k) for k in ("corpus", "valid", "test")})
    check_replaceable(out_dir, "prepared-data", PREPARED_FILES)
    with output_lock(out_dir):  # one run per output; a killed run's temporaries are removed by the next
        remove_stale_temporaries(out_dir.parent, out_dir.name)
        with atomic_path(out_dir, kind="prepared-data", own=PREPARED_FILES) as tmp:
            tmp.mkdir()
            stats = _prepare_into(cfg, tmp, progress, vocab, sp_model)
    return stats


def _prepare_into(
    cfg: PrepareConfig, out: Path, progress: bool, fixed_vocab: Vocab | None = None, sp_model: Path | None = None
) -> dict:
    """Run passes 1–4 into the existing directory ``out``; return the stats dict (also in meta.json)."""
    sources = _Sources(cfg, ReadStats())
    tokenizer = _make_tokenizer(cfg, sources, out, sp_model)
    tokenized = _tokenize_into_split_files(cfg, sources, tokenizer, out, progress)
    _check_splits_not_empty(cfg, tokenized.n_sent)
    vocab = fixed_vocab or Vocab.build(tokenized.counts, tokenized.n_sent["train"], cfg.min_count, cfg.max_vocab_size)
    vocab.save(out / "vocab.txt")
    split_info, extra = _write_shards(out, vocab, cfg.shard_tokens)
    types = vocab.tokens + extra
    _write_types(out, extra, types, cfg.max_chars)
    stats = _stats(out, tokenized, split_info, len(vocab), sources.read_stats)
    _write_meta(out, cfg, len(vocab), types, split_info, sources.read_stats, stats)
    warning = glued_warning(
        f"prepare ({cfg.tokenizer} tokenizer)", stats["glued_punctuation_tokens"], stats["train_tokens"]
    )
    if warning:
        print(warning, file=sys.stderr)
    return stats


def _sentencepiece_sample(cfg: PrepareConfig, sources: _Sources) -> Iterator[str]:
    """The first ``cfg.sp_max_sentences`` train sentences (lowercased if configured)."""
    n = 0
    for split, line in sources:
        if split != "train":
            continue
        for sent in _sentences(line.text.strip(), cfg.split_sentences):
            yield sent.lower() if cfg.lowercase else sent
            n += 1
            if n >= cfg.sp_max_sentences:
                return


def _make_tokenizer(cfg: PrepareConfig, sources: _Sources, out: Path, sp_model: Path | None = None):
    """Pass 1: the configured tokenizer. SentencePiece is trained on a train sample (or ``sp_model``
    copied) and saved as ``out/SP_MODEL_FILE``; ``sources.read_stats`` is then reset so it counts
    the main pass only."""
    if cfg.tokenizer != "sentencepiece":
        return make_tokenizer(cfg.tokenizer, cfg.lowercase)
    if sp_model is not None:
        shutil.copy(sp_model, out / SP_MODEL_FILE)
        return SentencePieceTokenizer(out / SP_MODEL_FILE, lowercase=cfg.lowercase)
    train_sentencepiece(
        _sentencepiece_sample(cfg, sources),
        out / SP_MODEL_FILE,
        cfg.sp_vocab_size,
        cfg.sp_model_type,
        cfg.sp_character_coverage,
    )
    sources.read_stats = ReadStats()  # count the main pass only
    return SentencePieceTokenizer(out / SP_MODEL_FILE, lowercase=cfg.lowercase)


@dataclasses.dataclass
class _Tokenized:
    """What pass 2 counted: train token counts, sentences per split, skipped and cut lines."""

    counts: Counter
    n_sent: dict
    blank_lines: int = 0
    long_sentences_split: int = 0


def _tokenize_into_split_files(
    cfg: PrepareConfig, sources: _Sources, tokenizer, out: Path, progress: bool
) -> _Tokenized:
    """Pass 2: tokenize every source line, cut sentences longer than ``cfg.max_sentence_length``
    into pieces and append each piece to ``out/{split}.txt`` (space-separated tokens, one a line)."""
    result = _Tokenized(Counter(), dict.fromkeys(SPLITS, 0))
    m = cfg.max_sentence_length
    files = {s: open(out / f"{s}.txt", "w", encoding="utf-8") for s in SPLITS}
    try:
        for split, line in _progress(sources, "prepare: tokenize", progress):
            if split == "blank":
                result.blank_lines += 1
                continue
            for sent in _sentences(line.text.strip(), cfg.split_sentences):
                tokens = tokenizer.tokenize(sent)
                if not tokens:
                    result.blank_lines += 1
                    continue
                if len(tokens) > m:
                    result.long_sentences_split += 1
                for start in range(0, len(tokens), m):
                    piece = tokens[start : start + m]
                    files[split].write(" ".join(piece) + "\n")
                    result.n_sent[split] += 1
                    if split == "train":
                        result.counts.update(piece)
    finally:
        for f in files.values():
            f.close()
    return result


def _check_splits_not_empty(cfg: PrepareConfig, n_sent: dict) -> None:
    """Raise a one-line PipelineError naming the first split (train, valid, test) with no sentence."""
    for split in SPLITS:
        if n_sent[split] == 0:
            if split == "train":
                raise PipelineError(f"{cfg.corpus}: corpus is empty (no non-blank lines)")
            given = getattr(cfg, split)
            hint = (
                f"{given}: file has no non-blank lines"
                if given is not None
                else f"no sentence was assigned to it; raise prepare.{split}_fraction or give prepare.{split}"
            )
            raise PipelineError(f"{cfg.corpus}: the {split} split is empty: {hint}")


def _write_shards(out: Path, vocab: Vocab, shard_tokens: int) -> tuple[dict, list[str]]:
    """Pass 4: re-read each ``out/{split}.txt`` and write its type ids as shards to ``out/{split}/``.

    Out-of-vocabulary types get ids V, V+1, ... in order of appearance (train, valid, test).
    Returns ``(split_info, extra)``: per split its sentences, tokens, shards and oov_rate; and the
    out-of-vocabulary types in id order."""
    V = len(vocab)
    type_index = dict(vocab.index)
    extra: list[str] = []
    split_info = {}
    for split in SPLITS:
        writer = ShardWriter(out / split, shard_tokens)
        oov = 0
        with open(out / f"{split}.txt", encoding="utf-8") as f:
            for text in f:
                ids = _type_ids(text.split(), type_index, extra, V)
                oov += int((ids >= V).sum())
                writer.add(ids)
        writer.flush()
        split_info[split] = {
            "sentences": writer.n_sentences,
            "tokens": writer.n_tokens,
            "shards": writer.n_shards,
            "oov_rate": oov / max(writer.n_tokens, 1),
        }
    return split_info, extra


def _type_ids(tokens: list[str], type_index: dict, extra: list[str], V: int) -> np.ndarray:
    """Type ids (int32, one per token); a type not yet in ``type_index`` gets the id
    ``V + len(extra)`` and is added to ``type_index`` and appended to ``extra``."""
    ids = np.empty(len(tokens), dtype=np.int32)
    for k, tok in enumerate(tokens):
        tid = type_index.get(tok)
        if tid is None:
            tid = type_index[tok] = V + len(extra)
            extra.append(tok)
        ids[k] = tid
    return ids


def _write_types(out: Path, extra: list[str], types: list[str], max_chars: int) -> None:
    """Write ``out/extra_types.txt`` (the out-of-vocabulary types, one a line) and
    ``out/char_ids.npy`` (the character ids of every type, vocabulary then extra; the padding type's row is all
    padding)."""
    (out / "extra_types.txt").write_text("".join(t + "\n" for t in extra), encoding="utf-8")
    np.save(out / "char_ids.npy", char_table(types, max_chars, pad_rows=[PAD_ID]))


def _stats(out: Path, tokenized: _Tokenized, split_info: dict, V: int, read_stats: ReadStats) -> dict:
    """The stage's metrics dict: sizes per split, vocabulary size, OOV rates, train sentence
    lengths (read back from the ``out/train/lengths-*.npy`` shards) and bad-input counts."""
    lengths = np.concatenate([np.load(p) for p in sorted((out / "train").glob("lengths-*.npy"))])
    pct = {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99)}
    return {
        "train_sentences": split_info["train"]["sentences"],
        "train_tokens": split_info["train"]["tokens"],
        "train_types": len(tokenized.counts),
        "valid_sentences": split_info["valid"]["sentences"],
        "valid_tokens": split_info["valid"]["tokens"],
        "test_sentences": split_info["test"]["sentences"],
        "test_tokens": split_info["test"]["tokens"],
        "vocab_size": V,
        "valid_oov_rate": round(split_info["valid"]["oov_rate"], 6),
        "test_oov_rate": round(split_info["test"]["oov_rate"], 6),
        "sentence_length": {**pct, "max": int(lengths.max()), "mean": round(float(lengths.mean()), 3)},
        "blank_lines": tokenized.blank_lines,
        "long_sentences_split": tokenized.long_sentences_split,
        "glued_punctuation_tokens": sum(n for t, n in tokenized.counts.items() if count_glued([t])),
        "invalid_utf8_lines_replaced": read_stats.replaced_utf8,
        "byte_order_marks_removed": read_stats.bom,
    }


def _write_meta(
    out: Path, cfg: PrepareConfig, V: int, types: list[str], split_info: dict, read_stats: ReadStats, stats: dict
) -> None:
    """Write ``out/meta.json``: format version, tokenizer and char settings, sizes, sources, the
    stats and the config. Written last; it is also the marker that lets a later run replace this directory."""
    meta = {
        "format_version": PREPARED_FORMAT,
        "tokenizer": cfg.tokenizer,
        "tokenizer_model": SP_MODEL_FILE if cfg.tokenizer == "sentencepiece" else None,
        "lowercase": cfg.lowercase,
        "max_chars": cfg.max_chars,
        "char_ids": {
            "bos": BOS_CHAR,
            "eos": EOS_CHAR,
            "bow": BOW_CHAR,
            "eow": EOW_CHAR,
            "pad": PAD_CHAR,
            "n": N_CHAR_IDS,
        },
        "specials": list(SPECIALS),
        "vocab_size": V,
        "n_types": len(types),
        "splits": split_info,
        "sources": sorted(set(read_stats.sources)),
        "stats": stats,
        "config": dataclasses.asdict(cfg),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
