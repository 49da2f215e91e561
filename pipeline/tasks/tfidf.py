"""TF-IDF + logistic regression: the sentence classifier a practitioner tries first, as a model of
its own (``elmo finetune --task classify --set model=tfidf``) with the same directory, predict and
evaluate as the neural models.

Features: word 1–2-grams over the (already tokenized) text plus character 2–5-grams within word
boundaries, both with sublinear TF and IDF; scikit-learn's logistic regression, its inverse
regularisation ``C`` picked on the dev set from :data:`C_GRID`.

The model directory stores no pickle: ``tfidf_vocab.json`` (the two n-gram vocabularies) and
``model.safetensors`` (IDF vectors, weights, biases); loading rebuilds the scikit-learn objects.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.io import read_weights, write_model_dir

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
VOCAB_FILE = "tfidf_vocab.json"


def _vectorizers(word_vocab: dict | None = None, char_vocab: dict | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"\S+", lowercase=True, sublinear_tf=True,
                           dtype=np.float64, vocabulary=word_vocab)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True,
                           min_df=1 if char_vocab else 2, dtype=np.float64, vocabulary=char_vocab)
    return word, char


class TfidfClassifier:
    """Fitted vectorizers + logistic regression; the interface of a classification TaskModel."""

    def __init__(self, cfg: FinetuneConfig, word, char, logreg, C: float):
        self.cfg, self.word, self.char, self.logreg, self.C = cfg, word, char, logreg, C
        self.labels = [str(c) for c in logreg.classes_]
        self.tokenize = str.split
        self.config: dict = {}

    @classmethod
    def fit(cls, cfg: FinetuneConfig, train, dev, log=print) -> tuple["TfidfClassifier", list[dict]]:
        """Fit on ``train`` (TaskData) for every C of :data:`C_GRID`; keep the best dev accuracy."""
        from scipy.sparse import hstack
        from sklearn.linear_model import LogisticRegression

        word, char = _vectorizers()
        texts = [" ".join(s) for s in train.sentences]
        X = hstack([word.fit_transform(texts), char.fit_transform(texts)]).tocsr()
        best, history = None, []
        for C in C_GRID:
            logreg = LogisticRegression(C=C, max_iter=2000).fit(X, train.targets)
            model = cls(cfg, word, char, logreg, C)
            acc = model.scores(dev)["accuracy"]
            history.append({"C": C, "dev_accuracy": acc})
            log(f"tfidf C={C}: dev accuracy {acc:.4f}")
            if best is None or acc > best[0]:
                best = (acc, model)
        return best[1], history

    def _features(self, sentences: Sequence[Sequence[str]]):
        from scipy.sparse import hstack

        texts = [" ".join(s) for s in sentences]
        return hstack([self.word.transform(texts), self.char.transform(texts)]).tocsr()

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 1024) -> list:
        """(label, {label: probability}) per sentence; an empty sentence gets (None, {})."""
        out: list = [(None, {}) for _ in sentences]
        real = [i for i, s in enumerate(sentences) if s]
        if real:
            probs = self.logreg.predict_proba(self._features([sentences[i] for i in real]))
            for i, p in zip(real, probs.tolist()):
                out[i] = (self.labels[int(np.argmax(p))], dict(zip(self.labels, p)))
        return out

    def scores(self, data, pred: list | None = None) -> dict:
        from pipeline.tasks.metrics import classification_scores

        pred = self.predict(data.sentences) if pred is None else pred
        return classification_scores(data.targets, [p for p, _ in pred], self.labels)

    def dev_metric(self, scores: dict) -> float:
        return scores["accuracy"]

    # --- the model directory -------------------------------------------------------------------

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        from pipeline.tasks.model import FORMAT_VERSION, KIND, model_card

        config = {"format_version": FORMAT_VERSION, "task": "classify", "labels": self.labels,
                  "finetune": dataclasses.asdict(self.cfg), "encoder": None, "word2vec": None, "C": self.C,
                  **(extra or {})}
        tensors = {"word_idf": torch.from_numpy(self.word.idf_), "char_idf": torch.from_numpy(self.char.idf_),
                   "coef": torch.from_numpy(np.ascontiguousarray(self.logreg.coef_)),
                   "intercept": torch.from_numpy(np.ascontiguousarray(self.logreg.intercept_))}

        def side_files(tmp: Path) -> None:
            vocab = {"word": {k: int(v) for k, v in self.word.vocabulary_.items()},
                     "char": {k: int(v) for k, v in self.char.vocabulary_.items()}}
            (tmp / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True), encoding="utf-8")
            (tmp / "README.md").write_text(model_card(config), encoding="utf-8")

        write_model_dir(directory, KIND, config, tensors, side_files)

    @classmethod
    def load(cls, d: Path, config: dict, cfg: FinetuneConfig) -> "TfidfClassifier":
        from sklearn.linear_model import LogisticRegression

        try:
            vocab = json.loads((d / VOCAB_FILE).read_text(encoding="utf-8"))
            word, char = _vectorizers(vocab["word"], vocab["char"])
        except (OSError, ValueError, KeyError) as e:
            raise PipelineError(f"{d / VOCAB_FILE}: cannot read the TF-IDF vocabularies ({e})") from None
        t = read_weights(d)
        try:
            word.idf_, char.idf_ = t["word_idf"].numpy(), t["char_idf"].numpy()
            logreg = LogisticRegression()
            logreg.classes_ = np.array(config["labels"])
            logreg.coef_, logreg.intercept_ = t["coef"].numpy(), t["intercept"].numpy()
        except (KeyError, ValueError) as e:
            raise PipelineError(f"{d / 'model.safetensors'}: weights do not match {VOCAB_FILE} ({e})") from None
        model = cls(cfg, word, char, logreg, float(config.get("C", 1.0)))
        model.config = config
        return model


def finetune_tfidf(cfg: FinetuneConfig, splits, out_dir, log=print) -> dict:
    """Fit, save, and return the same metrics as a neural finetune run (one "epoch" per C)."""
    start = time.time()
    model, history = TfidfClassifier.fit(cfg, splits.train, splits.dev, log)
    dev = model.scores(splits.dev)
    best = 1 + [h["C"] for h in history].index(model.C)
    result = {"task": "classify", "model": "tfidf", "seed": cfg.seed, "labels": model.labels,
              "data": splits.counts(), "epochs_run": len(history), "best_epoch": best, "C": model.C, "dev": dev,
              "history": history}
    if splits.test is not None:
        result["test_predictions"] = model.predict(splits.test.sentences)
        result["test"] = model.scores(splits.test, result["test_predictions"])
        result["test_targets"] = splits.test.targets
    result["seconds"] = round(time.time() - start, 1)
    model.save(out_dir, {"dev_scores": dev, "test_scores": result.get("test"), "epoch": best})
    return result
