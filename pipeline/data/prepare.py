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
from collections import Counter
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.config import PrepareConfig
from pipeline.data.chars import BOS_CHAR, BOW_CHAR, EOS_CHAR, EOW_CHAR, N_CHAR_IDS, PAD_CHAR, char_table
from pipeline.data.corpus import Line, ReadStats, read_corpus
from pipeline.data.prepared import FORMAT_VERSION, SPLITS, ShardWriter
from pipeline.data.tokenizers import SP_MODEL_FILE, SentencePieceTokenizer, WhitespaceTokenizer, train_sentencepiece
from pipeline.data.vocab import PAD_ID, SPECIALS, Vocab
from pipeline.errors import PipelineError
from pipeline.io import atomic_path

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
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=" lines", mininterval=1.0, disable=None)


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


def prepare_corpus(cfg: PrepareConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Run the prepare stage into ``out_dir`` (replaced atomically); return the stats dict."""
    out_dir = Path(out_dir)
    with atomic_path(out_dir, marker="meta.json") as tmp:
        tmp.mkdir()
        stats = _prepare_into(cfg, tmp, progress)
    return stats


def _prepare_into(cfg: PrepareConfig, out: Path, progress: bool) -> dict:
    read_stats = ReadStats()
    sources = _Sources(cfg, read_stats)

    # 1. tokenizer
    if cfg.tokenizer == "sentencepiece":
        def train_sample() -> Iterator[str]:
            n = 0
            for split, line in sources:
                if split != "train":
                    continue
                for sent in _sentences(line.text.strip(), cfg.split_sentences):
                    yield sent.lower() if cfg.lowercase else sent
                    n += 1
                    if n >= cfg.sp_max_sentences:
                        return

        train_sentencepiece(
            train_sample(), out / SP_MODEL_FILE, cfg.sp_vocab_size, cfg.sp_model_type, cfg.sp_character_coverage
        )
        tokenizer = SentencePieceTokenizer(out / SP_MODEL_FILE, lowercase=cfg.lowercase)
        read_stats = sources.read_stats = ReadStats()  # count the main pass only
    else:
        tokenizer = WhitespaceTokenizer(lowercase=cfg.lowercase)

    # 2. tokenize into {split}.txt, count train tokens
    counts: Counter = Counter()
    n_sent = dict.fromkeys(SPLITS, 0)
    blank = long_split = 0
    files = {s: open(out / f"{s}.txt", "w", encoding="utf-8") for s in SPLITS}
    try:
        for split, line in _progress(sources, "prepare: tokenize", progress):
            if split == "blank":
                blank += 1
                continue
            for sent in _sentences(line.text.strip(), cfg.split_sentences):
                tokens = tokenizer.tokenize(sent)
                if not tokens:
                    blank += 1
                    continue
                if len(tokens) > cfg.max_sentence_length:
                    long_split += 1
                m = cfg.max_sentence_length
                for start in range(0, len(tokens), m):
                    piece = tokens[start : start + m]
                    files[split].write(" ".join(piece) + "\n")
                    n_sent[split] += 1
                    if split == "train":
                        counts.update(piece)
    finally:
        for f in files.values():
            f.close()

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
            raise PipelineError(f"{split} split is empty: {hint}")

    # 3. vocabulary
    vocab = Vocab.build(counts, n_sent["train"], cfg.min_count, cfg.max_vocab_size)
    vocab.save(out / "vocab.txt")
    V = len(vocab)

    # 4. shards (type ids); out-of-vocabulary types get ids V, V+1, ... in order of appearance
    type_index = dict(vocab.index)
    extra: list[str] = []
    split_info = {}
    for split in SPLITS:
        writer = ShardWriter(out / split, cfg.shard_tokens)
        oov = 0
        with open(out / f"{split}.txt", encoding="utf-8") as f:
            for text in f:
                tokens = text.split()
                ids = np.empty(len(tokens), dtype=np.int32)
                for k, tok in enumerate(tokens):
                    tid = type_index.get(tok)
                    if tid is None:
                        tid = type_index[tok] = V + len(extra)
                        extra.append(tok)
                    ids[k] = tid
                oov += int((ids >= V).sum())
                writer.add(ids)
        writer.flush()
        split_info[split] = {
            "sentences": writer.n_sentences,
            "tokens": writer.n_tokens,
            "shards": writer.n_shards,
            "oov_rate": oov / max(writer.n_tokens, 1),
        }
    (out / "extra_types.txt").write_text("".join(t + "\n" for t in extra), encoding="utf-8")
    types = vocab.tokens + extra
    np.save(out / "char_ids.npy", char_table(types, cfg.max_chars, pad_rows=[PAD_ID]))

    lengths = np.concatenate([np.load(p) for p in sorted((out / "train").glob("lengths-*.npy"))])
    pct = {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99)}
    stats = {
        "train_sentences": split_info["train"]["sentences"],
        "train_tokens": split_info["train"]["tokens"],
        "train_types": len(counts),
        "valid_sentences": split_info["valid"]["sentences"],
        "valid_tokens": split_info["valid"]["tokens"],
        "test_sentences": split_info["test"]["sentences"],
        "test_tokens": split_info["test"]["tokens"],
        "vocab_size": V,
        "valid_oov_rate": round(split_info["valid"]["oov_rate"], 6),
        "test_oov_rate": round(split_info["test"]["oov_rate"], 6),
        "sentence_length": {**pct, "max": int(lengths.max()), "mean": round(float(lengths.mean()), 3)},
        "blank_lines": blank,
        "long_sentences_split": long_split,
        "invalid_utf8_lines_replaced": read_stats.replaced_utf8,
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "tokenizer": cfg.tokenizer,
        "tokenizer_model": SP_MODEL_FILE if cfg.tokenizer == "sentencepiece" else None,
        "lowercase": cfg.lowercase,
        "max_chars": cfg.max_chars,
        "char_ids": {"bos": BOS_CHAR, "eos": EOS_CHAR, "bow": BOW_CHAR, "eow": EOW_CHAR, "pad": PAD_CHAR, "n": N_CHAR_IDS},
        "specials": list(SPECIALS),
        "vocab_size": V,
        "n_types": len(types),
        "splits": split_info,
        "sources": sorted(set(read_stats.sources)),
        "stats": stats,
        "config": dataclasses.asdict(cfg),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return stats

