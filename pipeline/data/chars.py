"""Character ids in the ELMo scheme (bilm-tf ``UnicodeCharsVocabulary``).

Each token becomes ``max_chars`` ids: begin-of-word, the token's UTF-8 bytes (0–255, truncated
so the end-of-word marker still fits), end-of-word, then padding. The sentence boundary tokens
``<S>`` and ``</S>`` are a single special id between the word markers. Any Unicode string works,
because every string has UTF-8 bytes; truncation may cut a multi-byte character, as in bilm-tf.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOS_CHAR = 256  # begin of sentence (inside the <S> token)
EOS_CHAR = 257  # end of sentence (inside the </S> token)
BOW_CHAR = 258  # begin of word
EOW_CHAR = 259  # end of word
PAD_CHAR = 260  # padding after the end of word, and every position of a padding token
N_CHAR_IDS = 261  # size of the character embedding table

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


def token_char_ids(token: str, max_chars: int = 50) -> np.ndarray:
    """``(max_chars,)`` int16 ids for one token."""
    out = np.full(max_chars, PAD_CHAR, dtype=np.int16)
    if token == BOS_TOKEN:
        body = [BOS_CHAR]
    elif token == EOS_TOKEN:
        body = [EOS_CHAR]
    else:
        body = list(token.encode("utf-8", errors="surrogatepass")[: max_chars - 2])
    ids = [BOW_CHAR, *body, EOW_CHAR]
    out[: len(ids)] = ids
    return out


def padded_char_ids(sentences: Sequence[Sequence[str]], max_chars: int, length: int | None = None) -> np.ndarray:
    """``(B, T, max_chars)`` int64 ids of each sentence's tokens, rows past a sentence's end all
    padding; T is ``length`` or the longest sentence's."""
    T = length if length is not None else max((len(s) for s in sentences), default=0)
    out = np.full((len(sentences), T, max_chars), PAD_CHAR, dtype=np.int64)
    for b, s in enumerate(sentences):
        if s:
            out[b, : len(s)] = np.stack([token_char_ids(t, max_chars) for t in s])
    return out


def char_table(tokens: Sequence[str], max_chars: int = 50, pad_rows: Sequence[int] = ()) -> np.ndarray:
    """``(len(tokens), max_chars)`` int16 ids; rows listed in ``pad_rows`` are all padding."""
    table = np.empty((len(tokens), max_chars), dtype=np.int16)
    for i, tok in enumerate(tokens):
        table[i] = token_char_ids(tok, max_chars)
    for i in pad_rows:
        table[i] = PAD_CHAR
    return table
