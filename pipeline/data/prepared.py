"""The prepared-data directory: what the prepare stage writes and every later stage reads.

::

    data/prepared/
      meta.json          format version, tokenizer, char settings, counts per split, the config
      vocab.txt          softmax vocabulary, ``token<TAB>count`` (see vocab.py); ids 0..V-1
      extra_types.txt    tokens seen in the data but not in the vocabulary, one per line;
                         type id = V + line index. Their characters still feed the char CNN.
      char_ids.npy       (n_types, max_chars) int16 character ids of every type (chars.py)
      tokenizer.model    the SentencePiece model (only with tokenizer: sentencepiece)
      train.txt          tokenized sentences, space-separated, one per line (word2vec reads this)
      valid.txt, test.txt
      train/ valid/ test/
        tokens-00000.npy   int32 type ids of consecutive sentences, no boundary tokens
        lengths-00000.npy  int32 tokens per sentence of that shard
        ...

Type ids below V are vocabulary ids; a type id ``>= V`` is an out-of-vocabulary word whose
softmax target is ``<UNK>``. Shards are memory-mapped, so a corpus larger than RAM streams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.data.vocab import UNK_ID, Vocab
from pipeline.errors import PipelineError

PREPARED_FORMAT = 1
SPLITS = ("train", "valid", "test")


class ShardWriter:
    """Append sentences (arrays of type ids); flush a shard every ``shard_tokens`` tokens."""

    def __init__(self, directory: Path, shard_tokens: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shard_tokens = shard_tokens
        self.buf: list[np.ndarray] = []
        self.buf_tokens = 0
        self.n_shards = 0
        self.n_sentences = 0
        self.n_tokens = 0

    def add(self, ids: np.ndarray) -> None:
        self.buf.append(ids.astype(np.int32, copy=False))
        self.buf_tokens += len(ids)
        self.n_sentences += 1
        self.n_tokens += len(ids)
        if self.buf_tokens >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        name = f"{self.n_shards:05d}"
        np.save(self.dir / f"tokens-{name}.npy", np.concatenate(self.buf))
        np.save(self.dir / f"lengths-{name}.npy", np.array([len(s) for s in self.buf], dtype=np.int32))
        self.n_shards += 1
        self.buf, self.buf_tokens = [], 0


@contextmanager
def damaged_files(directory: Path) -> Iterator[None]:
    """A missing, truncated or garbled file of prepared data becomes one line naming it."""
    try:
        yield
    except PipelineError:
        raise
    except (OSError, ValueError, KeyError, EOFError) as e:  # json/numpy errors are ValueErrors
        where = getattr(e, "filename", None) or directory
        raise PipelineError(
            f"{where}: damaged prepared data ({type(e).__name__}: {str(e)[:160]}); run the prepare stage again"
        ) from None


class PreparedSplit:
    """Random access to the sentences of one split, memory-mapped from its shards."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        length_files = sorted(self.dir.glob("lengths-*.npy"))
        if not length_files:
            raise PipelineError(f"{self.dir}: no shards found (run the prepare stage)")
        with damaged_files(self.dir):
            self._tokens = [
                np.load(self.dir / f.name.replace("lengths-", "tokens-"), mmap_mode="r") for f in length_files
            ]
            lengths = [np.load(f) for f in length_files]
        for f, tokens, n in zip(length_files, self._tokens, lengths):
            if len(tokens) != int(n.sum()):
                raise PipelineError(
                    f"{f}: damaged prepared data (its tokens shard holds {len(tokens)} ids, the "
                    f"lengths add up to {int(n.sum())}); run the prepare stage again"
                )
        self.lengths = np.concatenate(lengths).astype(np.int64)  # (n_sentences,)
        # sentence i lives in shard s = searchsorted(shard_start, i, 'right') - 1
        self._shard_start = np.cumsum([0] + [len(x) for x in lengths])[:-1]
        self._offsets = [np.concatenate([[0], np.cumsum(x, dtype=np.int64)]) for x in lengths]

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def sentence(self, i: int) -> np.ndarray:
        """Type ids of sentence ``i`` (no boundary tokens)."""
        s = int(np.searchsorted(self._shard_start, i, side="right")) - 1
        j = i - self._shard_start[s]
        off = self._offsets[s]
        return np.asarray(self._tokens[s][off[j] : off[j + 1]])

    def __iter__(self):
        for i in range(len(self)):
            yield self.sentence(i)


class PreparedData:
    """Everything the prepare stage wrote, loaded lazily."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        meta_file = self.dir / "meta.json"
        if not meta_file.is_file():
            raise PipelineError(f"{self.dir}: not a prepared-data directory (no meta.json; run the prepare stage)")
        with damaged_files(self.dir):
            self.meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if self.meta.get("format_version", 0) > PREPARED_FORMAT:
                raise PipelineError(
                    f"{meta_file}: format version {self.meta['format_version']} is newer than this code"
                )
            self.vocab = Vocab.load(self.dir / "vocab.txt")
            extra = (self.dir / "extra_types.txt").read_text(encoding="utf-8").split("\n")[:-1]  # our own file: \n only
            self.types = self.vocab.tokens + extra  # type id → token string
            self.char_ids = np.load(self.dir / "char_ids.npy", mmap_mode="r")  # (n_types, max_chars)
            self.max_chars = int(self.meta["max_chars"])
        if self.char_ids.shape != (len(self.types), self.max_chars):
            raise PipelineError(
                f"{self.dir}: damaged prepared data (char_ids.npy is {self.char_ids.shape}, expected "
                f"({len(self.types)}, {self.max_chars})); run the prepare stage again"
            )
        self._char_tensor = None
        self._splits: dict[str, PreparedSplit] = {}

    @property
    def identity(self) -> str:
        """A hash of what a biLM trained on this data depends on: the vocabulary (tokens in order),
        the character ids, the tokenizer and the casing. Recorded by pretraining (``prepared_id``),
        checked by evaluation, export and adaptation (:meth:`check_trained_on`)."""
        import hashlib

        settings = {k: self.meta.get(k) for k in ("max_chars", "char_ids", "specials", "tokenizer", "lowercase")}
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        h.update("\n".join(self.vocab.tokens).encode())
        return h.hexdigest()[:16]

    def check_trained_on(self, model_dir, train_cfg: dict, hint: str) -> None:
        """Refuse data other than a saved biLM's own (``train_cfg``: its config.json)."""
        if len(self.vocab) != train_cfg["vocab_size"]:
            raise PipelineError(
                f"{model_dir}: trained with {train_cfg['vocab_size']} words but {self.dir} has "
                f"{len(self.vocab)}; {hint}"
            )
        if train_cfg.get("max_chars", self.max_chars) != self.max_chars:
            raise PipelineError(
                f"{model_dir}: trained with max_chars {train_cfg['max_chars']} but {self.dir} has "
                f"{self.max_chars}; {hint}"
            )
        identity = self.identity  # a hash over the whole vocabulary: computed once
        if train_cfg.get("prepared_id", identity) != identity:
            raise PipelineError(
                f"{model_dir}: trained on other prepared data than {self.dir} (same size, but another "
                f"vocabulary, casing, tokenizer or character ids: was prepare re-run with other "
                f"settings?); {hint}"
            )

    def split(self, name: str) -> PreparedSplit:
        if name not in SPLITS:
            raise PipelineError(f"unknown split {name!r} (splits: {', '.join(SPLITS)})")
        if name not in self._splits:
            self._splits[name] = PreparedSplit(self.dir / name)
        return self._splits[name]

    @property
    def char_tensor(self):
        """The char-id table as a torch int64 tensor (n_types, max_chars), loaded once."""
        if self._char_tensor is None:
            import torch

            self._char_tensor = torch.from_numpy(np.array(self.char_ids, dtype=np.int64))
        return self._char_tensor

    def targets(self, type_ids: np.ndarray) -> np.ndarray:
        """Softmax target ids for type ids: out-of-vocabulary types become ``<UNK>``."""
        return np.where(type_ids < len(self.vocab), type_ids, UNK_ID)

    def text_file(self, name: str) -> Path:
        return self.dir / f"{name}.txt"
