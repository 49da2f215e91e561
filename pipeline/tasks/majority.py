"""The most-frequent-tag tagger (``model: majority``): each word gets the tag it had most often in
the training data (its lowercase form next, then the most frequent tag overall). The classic
part-of-speech baseline, trained in a second; ``model: auto`` trains it beside the BiLSTM, so a
tagging default never falls below it on dev.

Model directory: ``config.json`` (the common fields), ``tags.json`` (word → tag, lowercase word →
tag, the tag for an unseen word), an empty ``model.safetensors``, ``README.md``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.tasks.base import TaskModel
from pipeline.tasks.examples import as_token_lists, tokenizer_for
from pipeline.tasks.job import FinetuneJob, fitted_result

TABLE_FILE = "tags.json"


def most_frequent(counts: dict[str, Counter]) -> dict[str, str]:
    """key → its most frequent tag (ties: the tag that sorts first, so the table is deterministic)."""
    return {k: min(c, key=lambda t: (-c[t], t)) for k, c in counts.items()}


class MajorityTagger(TaskModel):
    """word → tag tables and the tag of an unseen word."""

    def __init__(self, cfg: FinetuneConfig, labels: list[str], words: dict, lower: dict, unseen: str):
        self.cfg, self.labels, self.words, self.lower, self.unseen = cfg, list(labels), words, lower, unseen
        self.tokenize = tokenizer_for(None)
        self.config: dict = {}

    @classmethod
    def fit_data(cls, cfg: FinetuneConfig, labels: list[str], sentences, targets) -> MajorityTagger:
        words: dict[str, Counter] = defaultdict(Counter)
        lower: dict[str, Counter] = defaultdict(Counter)
        overall: Counter = Counter()
        for toks, tags in zip(sentences, targets):
            for w, t in zip(toks, tags):
                words[w][t] += 1
                lower[w.lower()][t] += 1
                overall[t] += 1
        return cls(cfg, labels, most_frequent(words), most_frequent(lower), most_frequent({"": overall})[""])

    def tag(self, word: str) -> str:
        return self.words.get(word) or self.lower.get(word.lower()) or self.unseen

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 0) -> list:
        """A tag list per sentence (a token list or raw text)."""
        return [[self.tag(w) for w in s] for s in as_token_lists(sentences, self.tokenize)]

    def describe(self) -> str:
        return "each word's most frequent training tag (the most frequent tag for an unseen word)"

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        config = self.saved_config({}, extra)
        table = {"words": self.words, "lower": self.lower, "unseen": self.unseen}

        def side_files(tmp: Path) -> None:
            (tmp / TABLE_FILE).write_text(json.dumps(table, ensure_ascii=False, sort_keys=True), encoding="utf-8")

        self.write_dir(directory, config, {}, side_files)

    @classmethod
    def load(cls, d: Path, config: dict, cfg: FinetuneConfig, labels: list[str]) -> MajorityTagger:
        try:
            table = json.loads((d / TABLE_FILE).read_text(encoding="utf-8"))
            words, lower, unseen = dict(table["words"]), dict(table["lower"]), str(table["unseen"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise PipelineError(f"{d / TABLE_FILE}: cannot read the tag table ({e})") from None
        unknown = {t for t in [*words.values(), *lower.values(), unseen] if t not in set(labels)}
        if unknown:
            raise PipelineError(f"{d / TABLE_FILE}: tags {sorted(unknown)[:3]} are not in config.json's labels")
        model = cls(cfg, labels, words, lower, unseen)
        model.config = config
        return model


def fit_majority(job: FinetuneJob) -> dict:
    """Count, score on dev (and test), save: the same result as any finetune run (one "epoch")."""
    start = time.time()
    splits = job.read_splits(uses_encoder=False)
    model = MajorityTagger.fit_data(job.cfg, splits.labels, splits.train.sentences, splits.train.targets)
    return fitted_result(job, model, splits, start)
