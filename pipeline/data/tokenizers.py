"""Tokenizers: ``whitespace`` for pre-tokenized text, ``sentencepiece`` for raw text in any language.

The SentencePiece model is trained by the prepare stage on the train split and saved beside the
prepared data (``tokenizer.model``), so every later stage and every export uses the same model.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Protocol

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
