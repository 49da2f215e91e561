"""Linear sentence classifiers: scikit-learn logistic regression on sparse and pooled features.

- ``model: tfidf`` — TF-IDF + logistic regression, the classifier a practitioner tries first:
  word 1–2-grams plus character 2–5-grams within word boundaries, sublinear TF and IDF.
- ``model: linear`` — the same TF-IDF blocks plus ELMo as features (SentEval's recipe): each of
  the frozen biLM's L+1 layers pooled over the sentence's tokens (mean and max), standardised on
  the training set, then each row scaled to unit norm so the block weighs like one TF-IDF block.
  The regression learns its own mix of the layers. Seconds to train, robust on a few hundred
  sentences, and it uses the pretrained biLM.

Both pick the inverse regularisation ``C`` on the dev set from :data:`C_GRID`, and save, load,
predict and evaluate like every task model. The model directory stores no pickle:
``tfidf_vocab.json`` (the n-gram vocabularies), ``model.safetensors`` (IDF vectors, the ELMo
block's mean/scale, weights, biases) and, for ``linear``, ``encoder/`` (a copy of the encoder).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipeline.config import FinetuneConfig
from pipeline.errors import PipelineError
from pipeline.io import read_weights
from pipeline.tasks.base import TaskModel
from pipeline.tasks.examples import TaskData, as_token_lists, tokenizer_for
from pipeline.tasks.job import FinetuneJob, fitted_result

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
VOCAB_FILE = "tfidf_vocab.json"
ENCODER_DIR = "encoder"


def _vectorizers(word_vocab: dict | None = None, char_vocab: dict | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(
        ngram_range=(1, 2),
        token_pattern=r"\S+",
        lowercase=True,
        sublinear_tf=True,
        dtype=np.float64,
        vocabulary=word_vocab,
    )
    char = TfidfVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 5),
        lowercase=True,
        sublinear_tf=True,
        min_df=1 if char_vocab else 2,
        dtype=np.float64,
        vocabulary=char_vocab,
    )
    return word, char


class PooledElmo:
    """Sentence vectors from a frozen encoder: every biLM layer pooled over tokens, mean and max,
    ``(L+1) * 2 * 2P`` numbers, standardised with the training set's mean and scale.

    ``layers``: a dict ``tuple(tokens) → (L+1, T, 2P)`` of already computed biLM layers, shared
    with the BiLSTM's features (``model: auto`` computes each sentence's layers once)."""

    def __init__(
        self, encoder, mean: np.ndarray | None = None, scale: np.ndarray | None = None, layers: dict | None = None
    ):
        self.encoder, self.mean, self.scale = encoder, mean, scale
        self.layers = {} if layers is None else layers

    @property
    def dim(self) -> int:
        return self.encoder.n_layers * 2 * self.encoder.dim

    def pooled(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, dim) raw pooled vectors; an empty sentence gets zeros."""
        todo = list(dict.fromkeys(tuple(s) for s in sentences if s and tuple(s) not in self.layers))
        if todo:
            bar = "frozen biLM layers" if len(todo) > 1000 else None  # a bar for training sets, not predictions
            self.layers.update(zip(todo, self.encoder.embed([list(k) for k in todo], progress=bar)))
        out = np.zeros((len(sentences), self.dim), dtype=np.float64)
        for i, s in enumerate(sentences):
            if s:
                h = self.layers[tuple(s)]  # (L+1, T, 2P)
                out[i] = np.concatenate([h.mean(axis=1), h.max(axis=1)], axis=1).reshape(-1)
        return out

    def fit_transform(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        x = self.pooled(sentences)
        self.mean = x.mean(axis=0)
        self.scale = x.std(axis=0) + 1e-6
        return self._normalised(x)

    def transform(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        return self._normalised(self.pooled(sentences))

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        """Each feature to unit variance, then each row to unit L2 norm, like a TF-IDF row.

        Why per row: sentences unlike the training set's (1–3-word phrases, another domain) pool to
        vectors far from its mean; without the row norm their ELMo block dwarfs the TF-IDF blocks and
        the classifier's bias decides (SST-2-trained linear model on MPQA: 50.1% → 58.3%)."""
        z = (x - self.mean) / self.scale
        return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)


class LinearClassifier(TaskModel):
    """Fitted TF-IDF vectorizers (+ pooled ELMo) + logistic regression: a classification task model."""

    def __init__(self, cfg: FinetuneConfig, word, char, logreg, C: float, elmo: PooledElmo | None = None):
        self.cfg, self.word, self.char, self.logreg, self.C, self.elmo = cfg, word, char, logreg, C, elmo
        self.labels = [str(c) for c in logreg.classes_]
        self.tokenize = tokenizer_for(elmo.encoder if elmo is not None else None)
        self.config: dict = {}

    @classmethod
    def fit(
        cls, cfg: FinetuneConfig, train: TaskData, dev: TaskData, elmo: PooledElmo | None = None, log=print
    ) -> tuple[LinearClassifier, list[dict]]:
        """Fit on ``train`` (TaskData) for every C of :data:`C_GRID`; keep the best dev accuracy."""
        from scipy.sparse import csr_matrix, hstack
        from sklearn.linear_model import LogisticRegression

        word, char = _vectorizers()
        texts = [" ".join(s) for s in train.sentences]
        blocks = [word.fit_transform(texts), char.fit_transform(texts)]
        if elmo is not None:
            log(f"{cfg.model}: pooling the biLM layers of {len(train.sentences) + len(dev.sentences)} sentences")
            blocks.append(csr_matrix(elmo.fit_transform(train.sentences)))
        X = hstack(blocks).tocsr()
        best: tuple[float, LinearClassifier] | None = None
        history = []
        for C in C_GRID:
            logreg = LogisticRegression(C=C, max_iter=2000).fit(X, train.targets)
            model = cls(cfg, word, char, logreg, C, elmo)
            acc = model.scores(dev)["accuracy"]
            history.append({"C": C, "dev_accuracy": acc})
            log(f"{cfg.model} C={C}: dev accuracy {acc:.4f}")
            if best is None or acc > best[0]:
                best = (acc, model)
        assert best is not None  # C_GRID is not empty
        return best[1], history

    def _features(self, sentences: Sequence[Sequence[str]]):
        from scipy.sparse import csr_matrix, hstack

        texts = [" ".join(s) for s in sentences]
        blocks = [self.word.transform(texts), self.char.transform(texts)]
        if self.elmo is not None:
            blocks.append(csr_matrix(self.elmo.transform(sentences)))
        return hstack(blocks).tocsr()

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 1024) -> list:
        """(label, {label: probability}) per sentence (a token list or raw text); an empty
        sentence gets (None, {})."""
        sentences = as_token_lists(sentences, self.tokenize)
        out: list = [(None, {}) for _ in sentences]
        real = [i for i, s in enumerate(sentences) if s]
        for k in range(0, len(real), batch_size):
            idx = real[k : k + batch_size]
            probs = self.logreg.predict_proba(self._features([sentences[i] for i in idx]))
            for i, p in zip(idx, probs.tolist()):
                out[i] = (self.labels[int(np.argmax(p))], dict(zip(self.labels, p)))
        return out

    def describe(self) -> str:
        if self.elmo is None:
            return f"TF-IDF + logistic regression (C={self.C})"
        return f"TF-IDF + pooled ELMo layers, logistic regression (C={self.C})"

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` and add new ones to it (``linear`` only)."""
        if self.elmo is not None:
            self.elmo.layers = kept

    # --- the model directory -------------------------------------------------------------------

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        config = self.saved_config({"encoder": ENCODER_DIR if self.elmo else None, "C": self.C}, extra)
        tensors = {
            "word_idf": torch.from_numpy(self.word.idf_),
            "char_idf": torch.from_numpy(self.char.idf_),
            "coef": torch.from_numpy(np.ascontiguousarray(self.logreg.coef_)),
            "intercept": torch.from_numpy(np.ascontiguousarray(self.logreg.intercept_)),
        }
        if self.elmo is not None:
            tensors["elmo_mean"] = torch.from_numpy(self.elmo.mean)
            tensors["elmo_scale"] = torch.from_numpy(self.elmo.scale)

        def side_files(tmp: Path) -> None:
            vocab = {
                "word": {k: int(v) for k, v in self.word.vocabulary_.items()},
                "char": {k: int(v) for k, v in self.char.vocabulary_.items()},
            }
            (tmp / VOCAB_FILE).write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True), encoding="utf-8")
            if self.elmo is not None:
                self.elmo.encoder.save_pretrained(tmp / ENCODER_DIR)

        self.write_dir(directory, config, tensors, side_files)

    @classmethod
    def load(cls, d: Path, config: dict, cfg: FinetuneConfig, labels: list[str]) -> LinearClassifier:
        from sklearn.linear_model import LogisticRegression

        try:
            vocab = json.loads((d / VOCAB_FILE).read_text(encoding="utf-8"))
            word, char = _vectorizers(vocab["word"], vocab["char"])
        except (OSError, ValueError, KeyError) as e:
            raise PipelineError(f"{d / VOCAB_FILE}: cannot read the TF-IDF vocabularies ({e})") from None
        t = read_weights(d)
        elmo = None
        try:
            word.idf_, char.idf_ = t["word_idf"].numpy(), t["char_idf"].numpy()
            logreg = LogisticRegression()
            logreg.classes_ = np.array(labels)
            logreg.coef_, logreg.intercept_ = t["coef"].numpy(), t["intercept"].numpy()
            if config.get("encoder"):
                from pipeline.encoder import Encoder

                mean = t["elmo_mean"].numpy()
                elmo = PooledElmo(Encoder.from_pretrained(d / config["encoder"]), mean, t["elmo_scale"].numpy())
                if mean.shape != (elmo.dim,):
                    raise ValueError(f"elmo_mean has {mean.shape[0]} values, the encoder gives {elmo.dim}")
        except (KeyError, ValueError) as e:
            raise PipelineError(f"{d / 'model.safetensors'}: weights do not match {VOCAB_FILE} ({e})") from None
        model = cls(cfg, word, char, logreg, float(config.get("C", 1.0)), elmo)
        model.config = config
        return model


def fit_linear(job: FinetuneJob, with_elmo: bool) -> dict:
    """Fit TF-IDF + logistic regression (``with_elmo``: + the pooled biLM layers of the job's
    encoder), save, and return the same result as a neural finetune run (one "epoch" per C)."""
    start = time.time()
    splits = job.read_splits(uses_encoder=with_elmo)
    elmo = PooledElmo(job.encoder, layers=job.layer_cache) if with_elmo else None
    model, history = LinearClassifier.fit(job.cfg, splits.train, splits.dev, elmo, job.say)
    best = 1 + [h["C"] for h in history].index(model.C)
    return fitted_result(job, model, splits, start, history, best, C=model.C)
