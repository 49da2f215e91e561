"""An ensemble of sentence classifiers: the mean of its members' label probabilities.

``model: auto`` builds one from its candidates (TF-IDF, linear, BiLSTM) and keeps it when it has
the best dev accuracy; ``model: ensemble`` keeps it whatever dev says. Averaging a sparse n-gram
model with the ELMo models is robust where either errs alone (SST-2 with the ``make repro``
encoder: test 83.84 ± 0.32 over 3 seeds against 81.27 for TF-IDF alone; docs/benchmarks.md).

Model directory: ``config.json`` (kind ``task-model``, the member names) and ``members/<name>/``,
each a complete task-model directory of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.tasks.base import TaskModel
from pipeline.tasks.examples import as_examples

MEMBERS_DIR = "members"


class EnsembleClassifier(TaskModel):
    """Members that share one label set; predictions are their mean probabilities."""

    def __init__(self, cfg: FinetuneConfig, members: dict[str, TaskModel]):
        self.cfg, self.members = cfg, dict(members)
        first = next(iter(self.members.values()))
        self.labels = list(first.labels)
        for name, m in self.members.items():
            if sorted(m.labels) != sorted(self.labels):
                raise PipelineError(f"ensemble member {name}: labels {m.labels} differ from {self.labels}")
        # raw text is split once, as the members with an encoder do (the last member holds one if any)
        self.tokenize = list(self.members.values())[-1].tokenize
        self.pairs = first.pairs
        self.config: dict = {}

    def describe(self) -> str:
        return f"the mean probabilities of {', '.join(self.members)}"

    def share_layers(self, kept: dict) -> None:
        """Reuse already computed biLM layers (the members were trained on these sentences)."""
        for m in self.members.values():
            m.share_layers(kept)

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 64) -> list:
        """(label, {label: mean probability}) per sentence (token list or raw text); empty → (None, {})."""
        sentences = as_examples(sentences, self.tokenize, self.pairs)
        each = [m.predict(sentences) for m in self.members.values()]
        out: list = []
        for preds in zip(*each):
            if preds[0][0] is None:
                out.append((None, {}))
                continue
            probs = {label: sum(p[1][label] for p in preds) / len(preds) for label in self.labels}
            out.append((max(self.labels, key=lambda label: probs[label]), probs))
        return out

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        config = self.saved_config({"members": list(self.members)}, extra)

        def side_files(tmp: Path) -> None:
            (tmp / MEMBERS_DIR).mkdir()
            for name, m in self.members.items():
                kept = {k: v for k, v in m.config.items() if k.endswith("_scores") or k == "epoch"}
                m.save(tmp / MEMBERS_DIR / name, kept)

        self.write_dir(directory, config, {}, side_files)

    @classmethod
    def load(
        cls, d: Path, config: dict, cfg: FinetuneConfig, load_member: Callable[[Path], TaskModel]
    ) -> EnsembleClassifier:
        """The ensemble in ``d``; ``load_member`` loads each member's directory."""
        names = config.get("members")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise PipelineError(f"{d / 'config.json'}: an ensemble needs a list of member names")
        members = {name: load_member(d / MEMBERS_DIR / name) for name in names}
        for name, m in members.items():
            if m.labels != list(config.get("labels", m.labels)):
                raise PipelineError(f"{d / MEMBERS_DIR / name}: its labels differ from the ensemble's config.json")
        model = cls(cfg, members)
        model.config = config
        return model
