"""The softmax vocabulary: specials first, then words by descending train count.

Order is deterministic: count descending, ties broken by the token's code points.
Saved as ``vocab.txt``, one ``token<TAB>count`` per line, in id order. The specials' counts are:
``<PAD>`` 0, ``<UNK>`` the train tokens that map to it, ``<S>`` and ``</S>`` the train sentences.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.chars import BOS_TOKEN, EOS_TOKEN
from pipeline.data.lines import read_lines
from pipeline.errors import PipelineError
from pipeline.io import write_text_atomic

PAD_TOKEN = "<PAD>"
UNK_TOKEN = "<UNK>"
SPECIALS = (PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN)
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)


@dataclass
class Vocab:
    tokens: list[str]
    counts: list[int]

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self.index.get(token, UNK_ID)

    @classmethod
    def build(cls, counts: Counter, n_sentences: int, min_count: int = 1, max_size: int | None = None) -> Vocab:
        words = [(t, c) for t, c in counts.items() if c >= min_count and t not in SPECIALS]
        words.sort(key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            words = words[:max_size]
        kept = sum(c for _, c in words)
        unk = sum(counts.values()) - kept
        tokens = list(SPECIALS) + [t for t, _ in words]
        freqs = [0, unk, n_sentences, n_sentences] + [c for _, c in words]
        return cls(tokens, freqs)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, "".join(f"{t}\t{c}\n" for t, c in zip(self.tokens, self.counts)))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        path = Path(path)
        tokens, counts = [], []
        lines = read_lines(path, what="vocabulary file")
        for lineno, line in enumerate(lines, start=1):
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0] or not parts[1].isdigit():
                raise PipelineError(f"{path}:{lineno}: expected 'token<TAB>count', got {line!r}")
            tokens.append(parts[0])
            counts.append(int(parts[1]))
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise PipelineError(f"{path}: the first lines must be the specials {', '.join(SPECIALS)}")
        if len(set(tokens)) != len(tokens):
            raise PipelineError(f"{path}: duplicate tokens in vocabulary")
        return cls(tokens, counts)
