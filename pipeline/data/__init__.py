"""Data layer: corpus readers, tokenizers, vocabulary, character ids, prepared shards, batching."""

from pipeline.data.batching import IGNORE, Batch, BucketBatcher, make_batch
from pipeline.data.chars import char_table, token_char_ids
from pipeline.data.corpus import read_corpus
from pipeline.data.lines import Line
from pipeline.data.prepared import PreparedData, PreparedSplit
from pipeline.data.vocab import Vocab

__all__ = [
    "IGNORE",
    "Batch",
    "BucketBatcher",
    "make_batch",
    "char_table",
    "token_char_ids",
    "Line",
    "read_corpus",
    "PreparedData",
    "PreparedSplit",
    "Vocab",
]
