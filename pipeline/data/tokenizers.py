"""Tokenizers: ``ptb`` for raw English text, ``whitespace`` for pre-tokenized text, ``sentencepiece``
for raw text in any language.

``ptb`` is NLTK's ``NLTKWordTokenizer``: Penn Treebank conventions (``n't`` and clitics split off,
punctuation split from words, quotes as ``` `` ```/``''``), the tokenization of PTB and SST; it is
nearly idempotent on text already tokenized so (96% of SST sentences unchanged), so pre-tokenized
labelled files read the same. It needs no NLTK data download.

The SentencePiece model is trained by the prepare stage on the train split and saved beside the
prepared data (``tokenizer.model``), so every later stage and every export uses the same model.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from pipeline.errors import PipelineError

SP_MODEL_FILE = "tokenizer.model"


class Tokenizer(Protocol):
    name: str

    def tokenize(self, text: str) -> list[str]: ...


class WhitespaceTokenizer:
    """Split on runs of whitespace: the text is already tokenized."""

    name = "whitespace"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def tokenize(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()


# words whose period is part of them (NLTK splits a period off the last word only: it expects one
# sentence, while a line of raw text often holds several)
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp no vol fig mt ft gen gov sen rep rev lt col sgt capt "
    "jan feb mar apr jun jul aug sep sept oct nov dec approx dept est".split()
)


def _split_period(token: str) -> list[str]:
    """``good.`` → ``good .``; abbreviations (``Mr.``, ``U.S.``, ``J.``) keep their period."""
    word = token[:-1]
    if (
        len(token) < 3
        or not token.endswith(".")
        or "." in word
        or word.lower() in ABBREVIATIONS
        or not word.replace("-", "").replace("'", "").isalnum()
    ):
        return [token]
    return [word, "."]


class PTBTokenizer:
    """Penn Treebank-style word tokenization of raw English text (NLTK's ``NLTKWordTokenizer``),
    with periods split off inside a line of several sentences too."""

    name = "ptb"

    def __init__(self, lowercase: bool = False):
        from nltk.tokenize import NLTKWordTokenizer

        self.lowercase = lowercase
        self._tokenizer = NLTKWordTokenizer()

    def tokenize(self, text: str) -> list[str]:
        tokens = self._tokenizer.tokenize(text.lower() if self.lowercase else text)
        return [piece for t in tokens for piece in (_split_period(t) if t.endswith(".") else (t,))]


# a word with punctuation glued to its end or start ("good.", "back!", "(great"): raw text split on spaces
_GLUED = re.compile(r"^\w+[.,!?;:)\"]+$|^[(\"]\w+$")


def count_glued(tokens: list[str]) -> int:
    """Tokens that look like a word with punctuation glued on (raw text read as pre-tokenized)."""
    return sum(1 for t in tokens if len(t) > 1 and _GLUED.match(t))


GLUED_WARN_FRACTION = 0.03  # warn when more than this share of tokens has glued punctuation


def glued_warning(where: str, glued: int, tokens: int) -> str | None:
    """The one-line warning for whitespace tokenization of raw text, or None when it looks tokenized."""
    if tokens and glued / tokens > GLUED_WARN_FRACTION:
        return (
            f"warning: {where}: {glued} of {tokens} whitespace tokens ({glued / tokens:.1%}) have punctuation "
            f"glued on (e.g. 'good.'); for raw text use the ptb tokenizer (prepare.tokenizer: ptb)"
        )
    return None


class SentencePieceTokenizer:
    """Subword pieces from a trained SentencePiece model (pieces never contain whitespace)."""

    name = "sentencepiece"

    def __init__(self, model_file: str | Path, lowercase: bool = False):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.lowercase = lowercase
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        except (OSError, RuntimeError) as e:
            raise PipelineError(f"{model_file}: cannot load SentencePiece model: {e}") from None

    def tokenize(self, text: str) -> list[str]:
        text = text.lower() if self.lowercase else text
        return self.sp.encode(text.strip(), out_type=str)


def train_sentencepiece(
    sentences: Iterable[str],
    out_file: Path,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
) -> None:
    """Train a SentencePiece model on ``sentences`` and write it to ``out_file``."""
    import sentencepiece as spm

    buf = io.BytesIO()
    sentences = list(sentences)
    if not sentences:
        raise PipelineError("cannot train SentencePiece: the train split has no sentences")
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            # Deterministic: no sampling or shuffling inside the trainer, one thread.
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            # Our own vocabulary adds <S>, </S>, <UNK>, <PAD>; SentencePiece keeps its own unk only.
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            hard_vocab_limit=False,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise PipelineError(f"SentencePiece training failed: {str(e).splitlines()[0]}") from None
    out_file.write_bytes(buf.getvalue())


def make_tokenizer(kind: str, lowercase: bool = False, model_file: str | Path | None = None) -> Tokenizer:
    """The tokenizer named ``kind`` ("ptb", "whitespace", "sentencepiece" with its ``model_file``)."""
    if kind == "sentencepiece":
        if model_file is None:
            raise PipelineError("a SentencePiece tokenizer needs its model file")
        return SentencePieceTokenizer(model_file, lowercase=lowercase)
    if kind == "ptb":
        return PTBTokenizer(lowercase=lowercase)
    if kind == "whitespace":
        return WhitespaceTokenizer(lowercase=lowercase)
    raise PipelineError(f"unknown tokenizer {kind!r} (known: ptb, whitespace, sentencepiece)")
