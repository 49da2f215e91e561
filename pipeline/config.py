"""Typed configs: one dataclass per stage, loaded strictly from YAML.

Resolution order (later wins), each layer validated on its own so an error names its file:

    defaults in these dataclasses
      → pipeline/configs/presets/<name>.yaml for each name in ``presets:`` (in order)
      → the sections of the params file (``params.yaml``, DVC's default params file)

An unknown section or key, or a value of the wrong type, is a ``PipelineError`` naming the
file and the dotted key. Defaults live here, once.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from pipeline.errors import PipelineError

PRESET_DIR = Path(__file__).resolve().parent / "configs" / "presets"  # package data: works from a wheel
MAX_SEED = 2**32 - 1  # numpy's RandomState takes seeds below 2**32


def check_limits(cfg: Any, bad: Callable[[str, str], PipelineError]) -> None:
    """Every key of ``cfg.LIMITS`` at most its bound: sizes far beyond any use are refused in one
    line before they reach the allocator or a shape mismatch."""
    for key, high in getattr(cfg, "LIMITS", {}).items():
        value = getattr(cfg, key)
        if value is not None and value > high:
            raise bad(key, f"must be at most {high:,}, got {value:,}")


def check_seed(value: int, where: str) -> None:
    if not 0 <= value <= MAX_SEED:
        raise PipelineError(f"{where}: must be between 0 and {MAX_SEED}, got {value}")


@dataclass
class PrepareConfig:
    """Raw corpus → tokenized splits, vocabulary, character ids and shards (`prepare` stage)."""

    # Corpus spec: a file, a directory, a glob, a .gz file, ``hf:NAME:CONFIG:SPLIT:FIELD``
    # (Hugging Face datasets; NAME may be a local data directory), or ``default``
    # (the embedded corpus, see pipeline/data/corpus.py).
    corpus: str = "default"
    valid: str | None = None  # a corpus spec for the validation split; None = carve from corpus
    test: str | None = None  # likewise for the test split
    valid_fraction: float = 0.05  # used only when ``valid`` is None
    test_fraction: float = 0.05  # used only when ``test`` is None
    split_seed: int = 0
    hf_streaming: bool = True  # stream Hugging Face datasets instead of downloading them whole
    encoding_errors: Literal["error", "replace"] = "replace"  # invalid UTF-8: stop, or U+FFFD (counted)
    split_sentences: bool = False  # split pre-tokenized paragraphs after . ! ? tokens (WikiText)
    lowercase: bool = False
    # ptb: raw English text (NLTK, Penn Treebank conventions); whitespace: text already tokenized;
    # sentencepiece: subword pieces for raw text in any language
    tokenizer: Literal["ptb", "whitespace", "sentencepiece"] = "ptb"
    sp_vocab_size: int = 8000
    sp_model_type: Literal["unigram", "bpe"] = "unigram"
    sp_character_coverage: float = 0.9995
    sp_max_sentences: int = 1_000_000  # sentences of the train split used to train SentencePiece
    min_count: int = 2  # words seen fewer times in train map to <UNK> in the softmax vocabulary
    max_vocab_size: int | None = None  # most frequent words kept (specials not counted)
    max_chars: int = 50  # character ids per token, including begin/end-of-word markers
    max_sentence_length: int = 100  # longer lines are split into pieces of this many tokens
    shard_tokens: int = 5_000_000  # tokens per on-disk shard

    LIMITS: ClassVar[dict[str, int]] = {
        "sp_vocab_size": 1_000_000,
        "max_chars": 1_000,
        "max_sentence_length": 100_000,
        "shard_tokens": 1_000_000_000,
        "max_vocab_size": 10_000_000,
    }

    def validate(self, where: str) -> None:
        def bad(key: str, msg: str) -> PipelineError:
            return PipelineError(f"{where}: prepare.{key}: {msg}")

        check_limits(self, bad)

        for key in ("valid_fraction", "test_fraction"):
            v = getattr(self, key)
            if not 0.0 <= v < 1.0:
                raise bad(key, f"must be in [0, 1), got {v}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise bad("valid_fraction", "valid_fraction + test_fraction must be below 1")
        if self.max_chars < 3:
            raise bad("max_chars", f"must be at least 3 (two word markers and a byte), got {self.max_chars}")
        for key in ("min_count", "max_sentence_length", "shard_tokens", "sp_vocab_size", "sp_max_sentences"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be at least 1, got {getattr(self, key)}")
        if self.max_vocab_size is not None and self.max_vocab_size < 1:
            raise bad("max_vocab_size", f"must be at least 1 or null, got {self.max_vocab_size}")
        if not 0.0 < self.sp_character_coverage <= 1.0:
            raise bad("sp_character_coverage", f"must be in (0, 1], got {self.sp_character_coverage}")
        check_seed(self.split_seed, f"{where}: prepare.split_seed")


@dataclass
class Word2VecConfig:
    """Skip-gram word vectors with gensim on the prepared train split (`word2vec` stage)."""

    vector_size: int = 100
    window: int = 5
    negative: int = 5  # negative samples per positive (skip-gram with negative sampling, no hs)
    min_count: int = 2
    sample: float = 1e-3  # down-sampling threshold for frequent words
    epochs: int = 5
    alpha: float = 0.025
    min_alpha: float = 0.0001
    # 1 thread = bit-identical vectors for a seed; more threads are faster but their
    # interleaving changes the result (gensim's documented behaviour).
    workers: int = 1
    seed: int = 1
    format: Literal["binary", "text"] = "binary"  # the word2vec-format file: vectors.bin or vectors.txt
    oov_vector: Literal["random", "zero"] = "random"  # aligned-matrix rows for words without a vector
    restrict_vocab: int = 300_000  # evaluation considers only this many most frequent words (gensim)
    probe_words: list[str] = field(default_factory=list)  # nearest-neighbour report; [] = frequent words
    n_neighbours: int = 10

    LIMITS: ClassVar[dict[str, int]] = {
        "vector_size": 10_000,
        "window": 1_000,
        "negative": 1_000,
        "epochs": 10_000,
        "workers": 1_024,
        "n_neighbours": 1_000,
    }

    def validate(self, where: str) -> None:
        check_limits(self, lambda key, msg: PipelineError(f"{where}: word2vec.{key}: {msg}"))
        for key in (
            "vector_size",
            "window",
            "negative",
            "min_count",
            "epochs",
            "workers",
            "restrict_vocab",
            "n_neighbours",
        ):
            if getattr(self, key) < 1:
                raise PipelineError(f"{where}: word2vec.{key}: must be at least 1, got {getattr(self, key)}")
        if not 0.0 < self.alpha <= 1.0 or not 0.0 <= self.min_alpha <= self.alpha:
            raise PipelineError(f"{where}: word2vec.alpha/min_alpha: need 0 <= min_alpha <= alpha <= 1")
        if self.sample < 0:
            raise PipelineError(f"{where}: word2vec.sample: must be >= 0, got {self.sample}")
        check_seed(self.seed, f"{where}: word2vec.seed")


@dataclass
class ModelConfig:
    """Architecture of the biLM (the ``model`` section).

    The defaults are a small biLM (~1M parameters with a 4k vocabulary) that the default pipeline
    trains in about a minute on 2 CPU cores. Presets: tiny (tests), cpu (an hour on 2 cores),
    small (ELMo small, ~13.6M parameters), original (ELMo original).
    """

    char_embed_dim: int = 16  # E
    filters: list[list[int]] = field(  # [[width, filters], ...]; ELMo's: widths 1..7, F = 2048
        default_factory=lambda: [[1, 16], [2, 16], [3, 32], [4, 64], [5, 128]]
    )
    n_highway: int = 1
    char_activation: Literal["relu", "tanh"] = "relu"  # after the max-pool (bilm-tf allows both)
    projection_dim: int = 64  # P
    cell_dim: int = 256  # H
    n_layers: int = 2  # L
    dropout: float = 0.1
    # the sequence body of each direction: ELMo's projected LSTM, a GRU (cell H, then a projection
    # to P), or a TCN (dilated causal convolutions, Bai et al. 2018): n_layers residual blocks,
    # dilation 2^k in block k, filter width tcn_kernel, inner width H
    body: Literal["lstm", "gru", "tcn"] = "lstm"
    tcn_kernel: int = 3
    tcn_outputs: int = 2  # TCN block outputs given to the scalar mix (evenly spaced, the last included)
    skip_connections: bool = True  # residual connections between body layers (ELMo, bilm-tf's use_skip_connections)
    cell_clip: float | None = None  # ELMo clipped at 3 (bilm-tf); None = no clipping
    proj_clip: float | None = None
    softmax: Literal["full", "sampled", "adaptive"] = "full"
    n_samples: int = 8192  # sampled softmax: distinct negative classes per batch
    adaptive_cutoffs: list[int] = field(default_factory=list)  # adaptive softmax; [] = V/20, V/4

    @property
    def n_filters(self) -> int:  # F
        return sum(n for _, n in self.filters)

    LIMITS: ClassVar[dict[str, int]] = {
        "char_embed_dim": 4_096,
        "n_highway": 32,
        "projection_dim": 16_384,
        "cell_dim": 65_536,
        "n_layers": 64,
        "tcn_kernel": 64,
        "n_samples": 10_000_000,
    }

    def validate(self, where: str) -> None:
        def bad(key, msg):
            return PipelineError(f"{where}: model.{key}: {msg}")

        check_limits(self, bad)
        if len(self.filters) > 64 or any(len(f) == 2 and (f[0] > 1_000 or f[1] > 65_536) for f in self.filters):
            raise bad("filters", "at most 64 [width, filters] pairs, widths up to 1,000 and 65,536 filters each")

        if not self.filters or any(len(f) != 2 or f[0] < 1 or f[1] < 1 for f in self.filters):
            raise bad("filters", "must be a non-empty list of [width, filters] pairs of positive ints")
        for key in ("char_embed_dim", "projection_dim", "cell_dim", "n_layers", "n_samples"):
            if getattr(self, key) < 1:
                raise bad(key, f"must be at least 1, got {getattr(self, key)}")
        if self.n_highway < 0:
            raise bad("n_highway", "must be >= 0")
        if self.body != "lstm" and (self.cell_clip is not None or self.proj_clip is not None):
            raise bad("cell_clip", f"clipping exists only for the lstm body, not {self.body}")
        if self.body == "tcn" and not 1 <= self.tcn_outputs <= self.n_layers:
            raise bad("tcn_outputs", f"must be between 1 and n_layers ({self.n_layers}), got {self.tcn_outputs}")
        if self.tcn_kernel < 2:
            raise bad("tcn_kernel", f"must be at least 2, got {self.tcn_kernel}")
        if self.body == "lstm" and self.projection_dim >= self.cell_dim:
            raise bad("projection_dim", f"must be smaller than cell_dim ({self.cell_dim}) for a projected LSTM")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", f"must be in [0, 1), got {self.dropout}")
        if self.adaptive_cutoffs != sorted(set(self.adaptive_cutoffs)) or any(c < 1 for c in self.adaptive_cutoffs):
            raise bad("adaptive_cutoffs", f"must be increasing positive ints, got {self.adaptive_cutoffs}")
        for key in ("cell_clip", "proj_clip"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise bad(key, f"must be positive or null, got {getattr(self, key)}")

    def parameter_estimate(self, vocab_size: int) -> int:
        """About how many parameters the biLM has (the char CNN, highway, projection, both bodies
        and the softmax; biases and small tables left out): for a memory check before building it."""
        F, P, H, L = self.n_filters, self.projection_dim, self.cell_dim, self.n_layers
        cnn = self.char_embed_dim * sum(w * n for w, n in self.filters)
        body = 2 * L * (self.tcn_kernel * 2 * P * H if self.body == "tcn" else 9 * H * P)
        return cnn + self.n_highway * 2 * F * F + F * P + body + vocab_size * P

    def check_vocab(self, vocab_size: int, where: str) -> None:
        """Adaptive-softmax cutoffs must lie inside the vocabulary."""
        if self.softmax == "adaptive" and self.adaptive_cutoffs and self.adaptive_cutoffs[-1] >= vocab_size:
            raise PipelineError(
                f"{where}: model.adaptive_cutoffs: {self.adaptive_cutoffs[-1]} is not below the "
                f"vocabulary size {vocab_size}"
            )

    def check_max_chars(self, max_chars: int, where: str) -> None:
        """The widest character filter must fit in a token's ``max_chars`` character ids."""
        widest = max(w for w, _ in self.filters)
        if widest > max_chars:
            raise PipelineError(
                f"{where}: model.filters: a filter of width {widest} is wider than a token's "
                f"{max_chars} character ids (prepare.max_chars); use narrower filters or raise max_chars"
            )


@dataclass
class PretrainConfig:
    """biLM training (the ``pretrain`` stage): optimizer, schedule, budget, evaluation, checkpoints."""

    seed: int = 0
    max_tokens: int = 1024  # padded tokens per batch, summed over all processes
    grad_accum: int = 1  # batches per optimizer step
    epochs: int = 3
    max_steps: int | None = None  # optimizer steps; stops at whichever budget ends first
    max_minutes: float | None = None  # wall-clock budget for this run
    optimizer: Literal["adagrad", "adam", "adamw"] = "adam"
    lr: float = 3e-3
    adagrad_init_acc: float = 1.0  # Adagrad's initial accumulator (ELMo: lr 0.2, accumulator 1.0)
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0  # max global grad norm (ELMo: 10)
    warmup_steps: int = 0
    decay: Literal["constant", "linear", "cosine"] = "constant"  # after warm-up, towards 0 at max_steps
    eval_every: int = 50  # optimizer steps between validations (and a final one)
    eval_max_tokens: int = 8192  # padded tokens per validation batch
    eval_max_sentences: int | None = None  # validate on the first N valid sentences (None = all)
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    log_every: int = 10
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto = bf16 on GPU, no on CPU

    LIMITS: ClassVar[dict[str, int]] = {
        "max_tokens": 10_000_000,
        "grad_accum": 100_000,
        "epochs": 100_000,
        "eval_max_tokens": 10_000_000,
        "keep_checkpoints": 1_000,
    }

    def validate(self, where: str) -> None:
        check_limits(self, lambda key, msg: PipelineError(f"{where}: pretrain.{key}: {msg}"))
        for key in (
            "max_tokens",
            "grad_accum",
            "epochs",
            "eval_every",
            "eval_max_tokens",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
        ):
            if getattr(self, key) < 1:
                raise PipelineError(f"{where}: pretrain.{key}: must be at least 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise PipelineError(f"{where}: pretrain.lr: must be positive, got {self.lr}")
        if self.adagrad_init_acc <= 0:
            raise PipelineError(f"{where}: pretrain.adagrad_init_acc: must be positive, got {self.adagrad_init_acc}")
        if self.weight_decay < 0:
            raise PipelineError(f"{where}: pretrain.weight_decay: must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise PipelineError(f"{where}: pretrain.grad_clip: must be positive or null, got {self.grad_clip}")
        check_seed(self.seed, f"{where}: pretrain.seed")
        if self.max_steps is not None and self.max_steps < 1:
            raise PipelineError(f"{where}: pretrain.max_steps: must be at least 1 or null, got {self.max_steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise PipelineError(f"{where}: pretrain.max_minutes: must be positive or null, got {self.max_minutes}")
        if self.warmup_steps < 0:
            raise PipelineError(f"{where}: pretrain.warmup_steps: must be >= 0")
        if self.decay != "constant" and self.max_steps is None:
            raise PipelineError(f"{where}: pretrain.decay: {self.decay!r} needs pretrain.max_steps")


@dataclass
class ExportConfig:
    """The exported encoder (``export`` stage)."""

    with_softmax: bool = False  # keep the softmax weights (`elmo generate` and `elmo lm-score` need them)


# the finetune models each task can use (tfidf, linear and ensemble classify sentences)
# The names of the task types and model types (their registries, pipeline/tasks/kinds.py TASKS and
# pipeline/tasks/models.py MODEL_TYPES, check that they hold exactly these). Which model learns
# which task, and what each needs, is the registry's to say (pipeline.tasks.models.check_model).
TaskName = Literal["ner", "tag", "classify", "pair", "regress", "multilabel"]
ModelName = Literal["auto", "majority", "tfidf", "linear", "bilstm", "ensemble"]
FINETUNE_SECTIONS = ("finetune_ner", "finetune_sentiment")  # the params.yaml sections of FinetuneConfig


@dataclass
class DataConfig:
    """``data``: the labelled files and how they are read."""

    train: str = ""  # labelled files: CoNLL columns or CoNLL-U (ner, tag), TSV/CSV/JSONL (the others)
    dev: str = ""  # picks the epoch, the model type (auto), C and thresholds
    test: str | None = None  # scored once, at the end (null: none)
    format: Literal["tsv", "csv", "jsonl"] | None = None  # TSV/CSV/JSONL files: None = from the file suffix
    encoding_errors: Literal["error", "replace"] = "error"  # invalid UTF-8 / control characters: stop, or U+FFFD
    text_field: str | int = "sentence"  # TSV/CSV/JSONL: a header name, or a 0-based column number (no header row)
    # the second text of a pair (pair, regress); null: found by name (sentence1/sentence2,
    # premise/hypothesis, question1/question2, text/text_pair, sentence_A/sentence_B, ...)
    text_pair_field: str | int | None = None
    label_field: str | int = "label"  # TSV/CSV/JSONL: the label's header name or column number
    header: bool | None = None  # TSV/CSV header row: None = yes when the fields are names, no when numbers
    label_separator: str = ","  # multilabel: between the labels of a label field (joy,love)
    token_column: int = 0  # CoNLL files (ner, tag): the token's column, 0-based
    label_column: int = -1  # CoNLL files: the tag's column (-1: the last)
    conllu_tags: Literal["upos", "xpos"] = "upos"  # the tag column of a CoNLL-U file (.conllu)
    tag_scheme: Literal["iob1", "iob2", "bioes"] = "iob2"  # the scheme the files are written in
    invalid_tags: Literal["repair", "error"] = "repair"  # e.g. I-PER after O under IOB2

    def validate(self, bad: Callable[[str, str], PipelineError]) -> None:
        if not self.label_separator:
            raise bad("label_separator", "must not be empty (one or more characters between labels)")


@dataclass
class InputsConfig:
    """``inputs``: what a token is to the task model: word vectors, the ELMo scalar mix, its own characters."""

    use: Literal["both", "elmo", "word2vec"] = "both"  # word vectors, ELMo, or both (the task's chars come on top)
    encoder: str | None = "models/encoder"  # an exported encoder directory (`elmo export`)
    word2vec: str | None = "data/word2vec/vectors.bin"  # word2vec text/binary format or gensim .kv
    word_vectors: Literal["trainable", "frozen", "lookup"] = "trainable"  # lookup: per-token word2vec, frozen
    word_dropout: float = 0.5  # training words seen once → the unknown-word vector with this probability
    max_words: int = 100_000  # word table: training words + word2vec words up to this many
    char_encoder: Literal["cnn", "none"] = "cnn"  # the task's own character CNN (Ma & Hovy 2016)
    char_dim: int = 30
    char_filters: int = 50
    char_width: int = 3
    layer_norm: bool = False  # ScalarMix layer norm over unmasked positions
    elmo_dropout: float = 0.5  # dropout on the ELMo part of the input
    mix_l2: float = 0.0  # L2 penalty on the ScalarMix weights

    LIMITS: ClassVar[dict[str, int]] = {
        "char_dim": 4_096,
        "char_filters": 65_536,
        "char_width": 1_000,
        "max_words": 100_000_000,
    }

    def validate(self, bad: Callable[[str, str], PipelineError]) -> None:
        check_limits(self, bad)
        for key in ("char_dim", "char_filters", "char_width"):
            at_least(bad, self, key, 1)
        at_least(bad, self, "max_words", 2)
        for key in ("elmo_dropout", "word_dropout"):
            dropout_rate(bad, self, key)
        if self.mix_l2 < 0:
            raise bad("mix_l2", "must be >= 0")


@dataclass
class HeadConfig:
    """``head``: the task network on top of the inputs."""

    hidden: int = 100  # task BiLSTM cell size per direction
    dropout: float = 0.5
    pooling: Literal["max", "attention"] = "max"  # classify, pair, regress, multilabel: tokens → one vector
    clip: bool = False  # regress: predictions clipped to the range of the training scores
    elmo_output: bool = False  # ELMo also at the task BiLSTM's output (ELMo §3.3): a second scalar mix
    model_scheme: Literal["iob2", "bioes"] = "iob2"  # ner: the scheme the CRF learns (converted on read)

    LIMITS: ClassVar[dict[str, int]] = {"hidden": 65_536}

    def validate(self, bad: Callable[[str, str], PipelineError]) -> None:
        check_limits(self, bad)
        at_least(bad, self, "hidden", 1)
        dropout_rate(bad, self, "dropout")


@dataclass
class TrainingConfig:
    """``training``: the epoch loop of the task models that have one (bilstm), and the seed of all."""

    epochs: int = 50  # an upper bound: early stopping ends most runs (a few hundred sentences need 20-30)
    batch_size: int = 32
    lr: float = 1e-3
    grad_clip: float | None = 5.0  # max gradient norm (null: no clipping)
    # epochs without a better dev score before stopping, counted once the dev score beats the trivial
    # one (majority-class accuracy; F1 0 for ner) or after min_epochs epochs
    patience: int = 5
    min_epochs: int = 10
    max_minutes: float | None = None  # wall-clock budget (checked after each epoch)
    # model: auto ends within this many times the time its TF-IDF and linear candidates took: the
    # BiLSTM gets what is left (skipped when nothing is). null: no such bound; max_minutes holds
    auto_budget: float | None = 3.0
    finetune_encoder: bool = False  # update the biLM too (with encoder_lr); default frozen
    encoder_lr: float = 1e-4
    seed: int = 0
    # a directory for the resumable state (weights, optimizer, RNG, position), written after every
    # epoch and on SIGTERM/SIGHUP; a run with the same settings resumes from it. null: none
    checkpoint_dir: str | None = None

    LIMITS: ClassVar[dict[str, int]] = {
        "epochs": 100_000,
        "batch_size": 1_000_000,
        "patience": 100_000,
        "min_epochs": 100_000,
    }

    def validate(self, bad: Callable[[str, str], PipelineError]) -> None:
        check_limits(self, bad)
        for key in ("epochs", "batch_size", "patience", "min_epochs"):
            at_least(bad, self, key, 1)
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise bad("grad_clip", "must be positive or null")
        for key in ("lr", "encoder_lr"):
            if getattr(self, key) <= 0:
                raise bad(key, f"must be positive, got {getattr(self, key)}")
        for key in ("max_minutes", "auto_budget"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise bad(key, "must be positive or null")
        try:
            check_seed(self.seed, "seed")
        except PipelineError as e:
            raise bad("seed", str(e).removeprefix("seed: ")) from None


def at_least(bad: Callable[[str, str], PipelineError], cfg: Any, key: str, low: int) -> None:
    if getattr(cfg, key) < low:
        raise bad(key, f"must be at least {low}, got {getattr(cfg, key)}")


def dropout_rate(bad: Callable[[str, str], PipelineError], cfg: Any, key: str) -> None:
    if not 0.0 <= getattr(cfg, key) < 1.0:
        raise bad(key, f"must be in [0, 1), got {getattr(cfg, key)}")


@dataclass
class FinetuneConfig:
    """A downstream task on ``[word2vec ; ELMo scalar mix]`` inputs (``finetune_ner`` and
    ``finetune_sentiment`` stages, ``elmo finetune``), in four sections: ``data`` (the files and how
    they are read), ``inputs``, ``head`` and ``training``. Keys are written dotted on the command
    line (``--set training.lr=0.003``). Paths are relative to the working directory."""

    # ner: entity tags (BIO); tag: any per-token tags (POS, chunks; CoNLL columns or CoNLL-U);
    # classify: one label per text; pair: one label per pair of texts (NLI, paraphrase);
    # regress: a number per text or pair; multilabel: 0 or more labels per text
    task: TaskName = "ner"
    # auto: every model type the task supports, the best on the task's primary dev score kept
    # (`elmo finetune --help` and the configuration reference list the model types)
    model: ModelName = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    inputs: InputsConfig = field(default_factory=InputsConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self, where: str, section: str = "finetune") -> None:
        for name in SECTIONS_OF_FINETUNE:

            def bad(key: str, msg: str, name: str = name) -> PipelineError:
                return PipelineError(f"{where}: {section}.{name}.{key}: {msg}")

            getattr(self, name).validate(bad)
        if self.training.finetune_encoder and self.inputs.use == "word2vec":
            raise PipelineError(
                f"{where}: {section}.training.finetune_encoder: "
                "there is no encoder to finetune with inputs.use 'word2vec'"
            )
        if self.head.elmo_output and self.inputs.use == "word2vec":
            raise PipelineError(
                f"{where}: {section}.head.elmo_output: needs ELMo: inputs.use 'both' or 'elmo', not 'word2vec'"
            )

    def validate_inputs(self, where: str, section: str = "finetune") -> None:
        """The files ``inputs.use`` names are set (for a model type that uses them)."""
        use = self.inputs.use
        if use != "word2vec" and not self.inputs.encoder:
            raise PipelineError(f"{where}: {section}.inputs.encoder: inputs.use {use!r} needs an encoder directory")
        if use != "elmo" and not self.inputs.word2vec:
            raise PipelineError(f"{where}: {section}.inputs.word2vec: inputs.use {use!r} needs a word2vec vector file")


# the dataclass fields of FinetuneConfig: data, inputs, head, training
SECTIONS_OF_FINETUNE = tuple(
    n for n, tp in typing.get_type_hints(FinetuneConfig).items() if dataclasses.is_dataclass(tp)
)


def _dotted_keys() -> dict[str, str]:
    """Each finetune key of the flat layout (saved models of format 3, older config files) → its
    dotted key in the sections (``lr`` → ``training.lr``; ``inputs`` → ``inputs.use``)."""
    hints = typing.get_type_hints(FinetuneConfig)
    out = {"inputs": "inputs.use"}
    for name in SECTIONS_OF_FINETUNE:
        for f in dataclasses.fields(hints[name]):
            assert f.name not in out or f.name == "inputs", f"finetune key {f.name!r} in two sections"
            if f.name != "use":
                out[f.name] = f"{name}.{f.name}"
    return out


FLAT_FINETUNE_KEYS = _dotted_keys()


def nest_flat_finetune(flat: dict) -> dict:
    """A flat finetune mapping (format 3) in sections: ``{"lr": 0.1}`` → ``{"training": {"lr": 0.1}}``."""
    out: dict = {}
    for key, value in flat.items():
        section, dot, leaf = FLAT_FINETUNE_KEYS.get(key, key).partition(".")
        if dot:
            out.setdefault(section, {})[leaf] = value
        else:
            out[key] = value
    return out


def _ner_defaults() -> FinetuneConfig:
    return FinetuneConfig(
        task="ner",
        data=DataConfig(
            train="data/samples/ner/train.conll", dev="data/samples/ner/dev.conll", test="data/samples/ner/test.conll"
        ),
        training=TrainingConfig(epochs=30, patience=5, batch_size=16),
    )


def _sentiment_defaults() -> FinetuneConfig:
    return FinetuneConfig(
        task="classify",
        data=DataConfig(
            train="data/samples/sentiment/train.tsv",
            dev="data/samples/sentiment/dev.tsv",
            test="data/samples/sentiment/test.tsv",
        ),
        # lr: 0.01 and 0.001 stalled at dev 0.69. auto_budget null: a stage gives the same model on
        # every run (a wall-clock bound would make the BiLSTM's epochs depend on the machine's load)
        training=TrainingConfig(epochs=60, patience=15, batch_size=16, lr=0.003, auto_budget=None),
    )


INT8_MIN_COSINE = 0.99  # `elmo export --format onnx --int8`: the default lowest cosine of int8 vectors with fp32's
# `elmo export --format onnx --int8` of a task model: the default largest drop of its dev score
# (accuracy, F1, ...: in the metric's own units, 0.01 = one point) from the PyTorch model's
INT8_MAX_DROP = 0.01


@dataclass
class ServeConfig:
    """``elmo serve``: where it listens, how it batches, and the bounds of every request (a request
    over one gets a JSON error naming it; the queue over its bound answers 503)."""

    host: str = "127.0.0.1"  # loopback; another address serves whoever can reach this machine
    port: int = 8000
    max_body_bytes: int = 1_048_576  # a request body's size
    max_texts: int = 256  # texts (or pairs) per request
    max_chars: int = 20_000  # characters per text
    max_tokens: int = 1_000  # tokens per text, as the model splits it
    max_queue: int = 4_096  # texts accepted and waiting for a model; beyond it new requests get 503
    max_wait_ms: float = 5.0  # how long a batch waits for more texts after its first
    batch_tokens: int = 4_096  # padded tokens per model call (sorted by length)
    max_embed_values: int = 10_000_000  # numbers in one /embed answer (about 100 MB of JSON)

    LIMITS: ClassVar[dict[str, int]] = {
        "port": 65_535,
        "max_body_bytes": 1 << 30,
        "max_texts": 100_000,
        "max_chars": 10_000_000,
        "max_tokens": 1_000_000,
        "max_queue": 10_000_000,
        "max_wait_ms": 10_000,
        "batch_tokens": 10_000_000,
        "max_embed_values": 1_000_000_000,
    }

    def validate(self) -> None:
        def bad(key: str, why: str) -> PipelineError:
            return PipelineError(f"--{key.replace('_', '-')}: {why}")

        check_limits(self, bad)
        for key in ("max_body_bytes", "max_texts", "max_chars", "max_tokens", "max_queue", "batch_tokens",
                    "max_embed_values"):  # fmt: skip
            at_least(bad, self, key, 1)
        at_least(bad, self, "port", 0)
        if not 0 <= self.max_wait_ms:
            raise bad("max_wait_ms", f"must be at least 0, got {self.max_wait_ms}")


@dataclass
class Params:
    """The whole pipeline's configuration: one section per stage."""

    presets: list[str] = field(default_factory=list)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    word2vec: Word2VecConfig = field(default_factory=Word2VecConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    finetune_ner: FinetuneConfig = field(default_factory=_ner_defaults)
    finetune_sentiment: FinetuneConfig = field(default_factory=_sentiment_defaults)


SECTIONS = {name: tp for name, tp in typing.get_type_hints(Params).items() if name != "presets"}


# ---------------------------------------------------------------------------------------------
# strict conversion of plain YAML values to typed dataclasses


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (int→float only)."""
    if isinstance(value, float) and not math.isfinite(value):  # no setting takes nan or inf
        raise PipelineError(f"{where}: must be a finite number, got {value!r}")
    origin = typing.get_origin(tp)
    wrong = PipelineError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise wrong
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except PipelineError:
                pass
        raise wrong
    if origin is list:
        if not isinstance(value, list):
            raise wrong
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong
        return value
    raise TypeError(f"unsupported config annotation {tp!r}")  # a bug in this file, not a user error


def did_you_mean(word: str, known: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``known`` to a mistyped ``word``, else ``""``."""
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_section(cls: type, data: Any, where: str) -> dict:
    """Validate a mapping of overrides for dataclass ``cls``; return the converted mapping. A field
    that is itself a dataclass (a section of ``FinetuneConfig``) takes a mapping, and a dotted key
    (``training.lr``) reaches into it; the result is nested (``{"training": {"lr": ...}}``)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # not the ClassVar LIMITS
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k in names}
    out: dict = {}
    for key, value in data.items():
        head, dot, rest = str(key).partition(".")
        if head in hints and dataclasses.is_dataclass(hints[head]):
            if not dot and not isinstance(value, dict) and value is not None:
                raise PipelineError(
                    f"{where}.{key}: expected a mapping of the {key} section's keys{_moved_hint(cls, key)}"
                )
            inner = check_section(hints[head], {rest: value} if dot else value, f"{where}.{head}")
            out[head] = merge_values(out.get(head, {}), inner)
        elif key in hints:
            out[key] = _convert(value, hints[key], f"{where}.{key}")
        else:
            raise PipelineError(f"{where}.{key}: unknown key{_unknown_hint(cls, str(key), list(hints))}")
    return out


def _moved_hint(cls: type, key: str) -> str:
    """`` (now training.lr: ...)`` for a finetune key of the flat layout, else ``""``."""
    if cls is FinetuneConfig and key in FLAT_FINETUNE_KEYS:
        return f" (now {FLAT_FINETUNE_KEYS[key]}: finetune keys are grouped in {', '.join(SECTIONS_OF_FINETUNE)})"
    return ""


def _unknown_hint(cls: type, key: str, names: list[str]) -> str:
    moved = _moved_hint(cls, key)
    if moved:
        return moved
    last = key.rsplit(".", 1)[-1]  # `--set finetune_ner.hidden=8`: the key without its section
    if "." in key and cls is FinetuneConfig and last in FLAT_FINETUNE_KEYS:
        return f" (did you mean {FLAT_FINETUNE_KEYS[last]!r}?)"
    hint = f" (did you mean {last!r}?)" if "." in key and last in names else did_you_mean(key, names)
    return hint or f"; known keys: {', '.join(names)}"


def merge_values(base: dict, more: dict) -> dict:
    """``more`` over ``base``, section by section (nested mappings merge; other values replace)."""
    out = dict(base)
    for key, value in more.items():
        out[key] = (
            merge_values(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def with_values(cfg: Any, values: dict) -> Any:
    """A copy of the dataclass ``cfg`` with the checked, possibly nested ``values`` applied."""
    changes = {
        key: with_values(getattr(cfg, key), value) if dataclasses.is_dataclass(getattr(cfg, key)) else value
        for key, value in values.items()
    }
    return dataclasses.replace(cfg, **changes)


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter and closer to YAML 1.2: a key given twice in one mapping is an
    error naming its line (PyYAML keeps the last silently, so a repeated section drops the first),
    and ``1e-3`` is a float (YAML 1.1 needs ``1.0e-3`` and reads ``1e-3`` as a string)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # a list or a mapping as a key
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, not a {type(key).__name__}", key_node.start_mark
                ) from None
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def construct_undefined(self, node):
        raise yaml.constructor.ConstructorError(
            None, None, f"the tag {node.tag!r} is not allowed: plain YAML values only", node.start_mark
        )


StrictLoader.add_constructor(None, StrictLoader.construct_undefined)


StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_yaml_text(text: str):
    """YAML text → Python values with :class:`StrictLoader` (config files and ``--set`` values)."""
    return yaml.load(text, Loader=StrictLoader)


def _read_yaml(path: Path) -> dict:
    from pipeline.io import read_text

    text = read_text(path, "config file")
    try:
        data = read_yaml_text(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        why = getattr(e, "problem", None) or getattr(e, "reason", None) or e
        where = f" (position {e.position})" if isinstance(e, yaml.reader.ReaderError) else ""
        raise PipelineError(f"{path}{line}: invalid YAML: {' '.join(str(why).split())}{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PipelineError(f"{path}: expected a mapping of sections at the top level")
    return data


def _check_layer(path: Path, data: dict, allow_presets: bool) -> dict[str, dict]:
    layer: dict[str, dict] = {}
    for section, body in data.items():
        if section == "presets":
            if not allow_presets:
                raise PipelineError(f"{path}: presets: a preset cannot name other presets")
            continue
        if section not in SECTIONS:
            known = ["presets", *SECTIONS]
            hint = did_you_mean(str(section), known)
            listed = "" if hint else f"; known: {', '.join(known)}"
            raise PipelineError(f"{path}: {section}: unknown section{hint}{listed}")
        layer[section] = check_section(SECTIONS[section], body, f"{path}: {section}")
    return layer


def available_presets(preset_dir: Path = PRESET_DIR) -> list[str]:
    return sorted(p.stem for p in preset_dir.glob("*.yaml"))


def load_params(path: str | Path = "params.yaml", preset_dir: Path | None = None) -> Params:
    """Load the params file, applying its presets over the defaults, then its own sections."""
    path = Path(path)
    preset_dir = Path(preset_dir) if preset_dir is not None else PRESET_DIR
    data = _read_yaml(path)
    presets = _convert(data.get("presets", []) or [], list[str], f"{path}: presets")
    layers = []
    for name in presets:
        preset_path = preset_dir / f"{name}.yaml"
        if not preset_path.is_file():
            names = available_presets(preset_dir)
            hint = did_you_mean(name, names)
            known = ", ".join(names) or "none"
            raise PipelineError(f"{path}: presets: no preset named {name!r}{hint} in {preset_dir}; available: {known}")
        layers.append((preset_path, _check_layer(preset_path, _read_yaml(preset_path), allow_presets=False)))
    layers.append((path, _check_layer(path, data, allow_presets=True)))

    merged: dict[str, dict] = {name: {} for name in SECTIONS}
    for _, layer in layers:
        for section, values in layer.items():
            merged[section] = merge_values(merged[section], values)
    defaults = Params()
    sections = {name: with_values(getattr(defaults, name), values) for name, values in merged.items()}
    for name, cfg in sections.items():
        if isinstance(cfg, FinetuneConfig):
            cfg.validate(str(path), name)
        elif hasattr(cfg, "validate"):
            cfg.validate(str(path))
    sections["model"].check_max_chars(sections["prepare"].max_chars, str(path))
    return Params(presets=presets, **sections)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def load_finetune_config(
    path: str | Path | None = None,
    overrides: dict | None = None,
    base: FinetuneConfig | None = None,
    infer_inputs: bool = False,
    infer_task: Callable[[dict], str | None] | None = None,
) -> FinetuneConfig:
    """A FinetuneConfig from ``base`` (default: the dataclass defaults), then the keys of a YAML
    file (``elmo finetune --config``), then ``overrides`` (command-line options that were given;
    dotted keys like ``training.lr`` reach into the sections). ``infer_inputs``: when ``inputs.use``
    is set nowhere and only one of ``inputs.encoder``/``inputs.word2vec`` is, use only that one
    (``elmo finetune --encoder DIR`` means ELMo inputs). ``infer_task``: when ``task`` is set
    nowhere, ``infer_task(the values set, nested)`` may name it (None keeps the default)."""
    values: dict = {}
    if path is not None:
        data = _read_yaml(Path(path))
        keys = [f.name for f in dataclasses.fields(FinetuneConfig)]
        others = [k for k, v in data.items() if k not in keys and (isinstance(v, dict) or k in FINETUNE_SECTIONS)]
        where = f"{path}: finetune"
        if len(data) == 1 and next(iter(data)) in FINETUNE_SECTIONS:
            where = f"{path}: {next(iter(data))}"
            data = next(iter(data.values())) or {}  # a section copied from params.yaml, header and all
        elif others:
            hint = "" if others[0] in FINETUNE_SECTIONS else did_you_mean(str(others[0]), list(FINETUNE_SECTIONS))
            raise PipelineError(
                f"{path}: {others[0]}: a finetune config holds one task's keys, alone or under one "
                f"section header ({' or '.join(FINETUNE_SECTIONS)}){hint}"
            )
        values = check_section(FinetuneConfig, data, where)
    values = merge_values(values, check_section(FinetuneConfig, overrides or {}, "command line: finetune"))
    if infer_task is not None and "task" not in values:
        task = infer_task(values)
        if task is not None:
            values["task"] = task
    given = values.get("inputs", {})
    if infer_inputs and "use" not in given and ("encoder" in given) != ("word2vec" in given):
        values = merge_values(values, {"inputs": {"use": "elmo" if "encoder" in given else "word2vec"}})
    cfg = with_values(base or FinetuneConfig(), values)
    cfg.validate(str(path) if path else "command line", "finetune")
    return cfg


def parse_set(items: list[str]) -> dict:
    """``--set KEY=VALUE`` options → {key: value}, each value read as YAML (``3`` → 3, ``true`` → True)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PipelineError(f"--set {item!r}: expected KEY=VALUE (e.g. --set head.pooling=attention)")
        try:
            out[key.strip()] = read_yaml_text(value)
        except yaml.YAMLError:
            raise PipelineError(f"--set {item!r}: the value is not valid YAML") from None
    return out
