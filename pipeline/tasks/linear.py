"""Linear text models: scikit-learn logistic regression (classify, pair) or ridge regression
(regress) on sparse and pooled features.

- ``model: tfidf`` — TF-IDF + logistic regression, the classifier a practitioner tries first:
  word 1–2-grams plus character 2–5-grams within word boundaries, sublinear TF and IDF. For pairs
  of texts: each side's blocks, their product and absolute difference, and three overlap columns
  (the cosine of the sides per block, their word Jaccard).
- ``model: linear`` — the same TF-IDF blocks plus ELMo as features (SentEval's recipe): each of
  the frozen biLM's L+1 layers pooled over the sentence's tokens (mean and max), standardised on
  the training set, then each row scaled to unit norm so the block weighs like one TF-IDF block.
  The regression learns its own mix of the layers. Seconds to train, robust on a few hundred
  sentences, and it uses the pretrained biLM.

Both pick the inverse regularisation ``C`` on the task's dev metric from :data:`C_GRID`, and save, load,
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
from pipeline.tasks.examples import TaskData, as_examples, sides, tokenizer_for
from pipeline.tasks.job import FinetuneJob, fitted_result
from pipeline.tasks.kinds import task_named

C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# pairs (four times the blocks) and ridge regression picked the grid's strongest end on SICK dev:
# they search three steps further
WIDE_C_GRID = (1 / 32, 1 / 16, 1 / 8, *C_GRID)
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
        self,
        encoder,
        mean: np.ndarray | None = None,
        scale: np.ndarray | None = None,
        layers: dict | None = None,
        pairs: bool = False,
    ):
        self.encoder, self.mean, self.scale, self.pairs = encoder, mean, scale, pairs
        self.layers = {} if layers is None else layers

    @property
    def sentence_dim(self) -> int:
        return self.encoder.n_layers * 2 * self.encoder.dim

    @property
    def dim(self) -> int:
        """The block's width: a sentence's pooled vector, or for pairs ``[u ; v ; |u − v| ; u ⊙ v]``."""
        return self.sentence_dim * (4 if self.pairs else 1)

    def pooled(self, examples: Sequence) -> np.ndarray:
        """(N, dim) raw pooled vectors of texts or pairs."""
        if not self.pairs:
            return self.pooled_texts(examples)
        u, v = self.pooled_texts([a for a, _ in examples]), self.pooled_texts([b for _, b in examples])
        return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)

    def pooled_texts(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """(N, sentence_dim) raw pooled vectors; an empty sentence gets zeros."""
        todo = list(dict.fromkeys(tuple(s) for s in sentences if s and tuple(s) not in self.layers))
        if todo:
            bar = "frozen biLM layers" if len(todo) > 1000 else None  # a bar for training sets, not predictions
            self.layers.update(zip(todo, self.encoder.embed([list(k) for k in todo], progress=bar)))
        out = np.zeros((len(sentences), self.sentence_dim), dtype=np.float64)
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


def text_blocks(word, char, examples: Sequence, pairs: bool, fit: bool = False) -> list:
    """The TF-IDF blocks of texts (word and character n-grams), or of pairs: each side's blocks,
    their element-wise product (the n-grams both share) and absolute difference, and the cosine
    of the two sides per block and their word overlap (Jaccard) as three dense columns."""
    from scipy.sparse import csr_matrix

    if not pairs:
        texts = [" ".join(s) for s in examples]
        return [v.fit_transform(texts) if fit else v.transform(texts) for v in (word, char)]
    a, b = [" ".join(x) for x, _ in examples], [" ".join(y) for _, y in examples]
    blocks, cosines = [], []
    for v in (word, char):
        if fit:
            v.fit(a + b)
        A, B = v.transform(a), v.transform(b)  # rows of unit length
        both = A.multiply(B)
        blocks += [A, B, both, abs(A - B)]
        cosines.append(np.asarray(both.sum(axis=1)).ravel())
    jaccard = [len(set(x) & set(y)) / max(len(set(x) | set(y)), 1) for x, y in examples]
    blocks.append(csr_matrix(np.column_stack([*cosines, jaccard])))
    return blocks


class OneVsRest:
    """One logistic regression per label (multi-label), kept as ``coef_`` (K, F) and
    ``intercept_`` (K,); a label that is always or never on in training gets a constant."""

    def __init__(self, C: float, labels: list[str]):
        self.C, self.classes_ = C, np.array(labels)
        self.coef_ = self.intercept_ = np.zeros(0)

    def fit(self, X, targets: list[list[str]]) -> OneVsRest:
        from sklearn.linear_model import LogisticRegression

        from pipeline.tasks.metrics import multi_hot

        y = multi_hot(targets, list(self.classes_))
        self.coef_ = np.zeros((y.shape[1], X.shape[1]))
        self.intercept_ = np.zeros(y.shape[1])
        for k in range(y.shape[1]):
            if y[:, k].min() == y[:, k].max():
                rate = min(max(float(y[:, k].mean()), 1e-4), 1 - 1e-4)
                self.intercept_[k] = np.log(rate / (1 - rate))
                continue
            lr = LogisticRegression(C=self.C, max_iter=2000).fit(X, y[:, k])
            self.coef_[k], self.intercept_[k] = lr.coef_[0], lr.intercept_[0]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(N, K) label probabilities."""
        return 1.0 / (1.0 + np.exp(-(X @ self.coef_.T + self.intercept_)))


class LinearModel(TaskModel):
    """Fitted TF-IDF vectorizers (+ pooled ELMo) + a linear model: logistic regression for labels
    (classify, pair), ridge regression for scores (regress); on texts or pairs of texts.
    ``C``: the inverse regularisation strength picked on dev (ridge's alpha is 1 / (2C))."""

    def __init__(self, cfg: FinetuneConfig, word, char, estimator, C: float, elmo: PooledElmo | None, pairs: bool):
        self.cfg, self.word, self.char, self.estimator, self.C, self.elmo = cfg, word, char, estimator, C, elmo
        self.pairs = pairs
        self.target = self.task.target  # label, labels or score: what predict returns
        self.labels = [] if self.target == "score" else [str(c) for c in estimator.classes_]
        self.thresholds = np.full(len(self.labels), 0.5)  # multilabel: picked on dev after fitting
        self.tokenize = tokenizer_for(elmo.encoder if elmo is not None else None)
        self.config: dict = {}
        self.range: tuple[float, float] | None = None  # regress: the training scores' range (clip)

    @classmethod
    def fit(
        cls,
        cfg: FinetuneConfig,
        train: TaskData,
        dev: TaskData,
        labels: list[str],
        elmo: PooledElmo | None = None,
        log=print,
    ) -> tuple[LinearModel, list[dict]]:
        """Fit on ``train`` (``labels``: its label set) for every C of :data:`C_GRID`
        (:data:`WIDE_C_GRID` for pairs and scores); keep the best on the task's dev metric."""
        from scipy.sparse import csr_matrix, hstack

        word, char = _vectorizers()
        blocks = text_blocks(word, char, train.sentences, train.pairs, fit=True)
        if elmo is not None:
            log(f"{cfg.model}: pooling the biLM layers of {len(train.sentences) + len(dev.sentences)} examples")
            blocks.append(csr_matrix(elmo.fit_transform(train.sentences)))
        X = hstack(blocks).tocsr()
        best: tuple[float, LinearModel] | None = None
        history = []
        target = task_named(cfg.task).target
        for C in WIDE_C_GRID if (train.pairs or target == "score") else C_GRID:
            model = cls(cfg, word, char, _estimator(target, C, labels).fit(X, train.targets), C, elmo, train.pairs)
            if target == "score":
                model.range = (min(train.targets), max(train.targets))
            metric = model.task.metric
            score = model.dev_metric(model.scores(dev))
            history.append({"C": C, f"dev_{metric}": score})
            log(f"{cfg.model} C={C}: dev {metric} {score:.4f}")
            if best is None or score > best[0]:
                best = (score, model)
        assert best is not None  # C_GRID is not empty
        best[1].task.after_training(best[1], dev)
        return best[1], history

    def _features(self, examples: Sequence):
        from scipy.sparse import csr_matrix, hstack

        blocks = text_blocks(self.word, self.char, examples, self.pairs)
        if self.elmo is not None:
            blocks.append(csr_matrix(self.elmo.transform(examples)))
        return hstack(blocks).tocsr()

    def predict(self, sentences: Sequence, batch_size: int = 1024) -> list:
        """Per example (a token list or raw text; a pair of them for a pair model): (label, {label:
        probability}), or a score (regress); an empty example gets the task's empty prediction."""
        examples = as_examples(sentences, self.tokenize, self.pairs)
        out: list = [self.task.empty_prediction for _ in examples]
        real = [i for i, e in enumerate(examples) if all(sides(e))]
        for k in range(0, len(real), batch_size):
            idx = real[k : k + batch_size]
            X = self._features([examples[i] for i in idx])
            if self.target == "score":
                y = self.estimator.predict(X)
                if self.cfg.head.clip and self.range is not None:
                    y = np.clip(y, *self.range)
                for i, v in zip(idx, y.tolist()):
                    out[i] = float(v)
                continue
            probs = self.estimator.predict_proba(X)
            for i, p, on in zip(idx, probs.tolist(), (probs >= self.thresholds).tolist()):
                if self.target == "labels":
                    out[i] = ([x for x, c in zip(self.labels, on) if c], dict(zip(self.labels, p)))
                else:
                    out[i] = (self.labels[int(np.argmax(p))], dict(zip(self.labels, p)))
        return out

    def set_thresholds(self, thresholds: list[float]) -> None:
        """A multi-label model's decision thresholds (picked on dev)."""
        self.thresholds = np.array(thresholds)

    def describe(self) -> str:
        how = "ridge regression" if self.target == "score" else "logistic regression"
        what = "TF-IDF" if self.elmo is None else "TF-IDF + pooled ELMo layers"
        return f"{what}{' of both texts and their overlap' if self.pairs else ''}, {how} (C={self.C})"

    def share_layers(self, kept: dict) -> None:
        """Reuse the frozen biLM layers in ``kept`` and add new ones to it (``linear`` only)."""
        if self.elmo is not None:
            self.elmo.layers = kept

    # --- the model directory -------------------------------------------------------------------

    def save(self, directory: str | Path, extra: dict | None = None) -> None:
        fields = {"encoder": ENCODER_DIR if self.elmo else None, "C": self.C, "pairs": self.pairs, "range": self.range}
        config = self.saved_config(fields, extra)
        tensors = {
            "word_idf": torch.from_numpy(self.word.idf_),
            "char_idf": torch.from_numpy(self.char.idf_),
            "coef": torch.from_numpy(np.ascontiguousarray(self.estimator.coef_)),
            "intercept": torch.from_numpy(np.ascontiguousarray(self.estimator.intercept_)),
        }
        if self.elmo is not None:
            tensors["elmo_mean"] = torch.from_numpy(self.elmo.mean)
            tensors["elmo_scale"] = torch.from_numpy(self.elmo.scale)
        if self.target == "labels":
            tensors["thresholds"] = torch.from_numpy(np.ascontiguousarray(self.thresholds, dtype=np.float64))

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
    def load(cls, d: Path, config: dict, cfg: FinetuneConfig, labels: list[str]) -> LinearModel:
        try:
            vocab = json.loads((d / VOCAB_FILE).read_text(encoding="utf-8"))
            word, char = _vectorizers(vocab["word"], vocab["char"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise PipelineError(f"{d / VOCAB_FILE}: cannot read the TF-IDF vocabularies ({e})") from None
        t = read_weights(d)
        pairs = bool(config.get("pairs", False))
        elmo = None
        try:
            word.idf_, char.idf_ = t["word_idf"].numpy(), t["char_idf"].numpy()
            estimator = _estimator(task_named(cfg.task).target, float(config.get("C", 1.0)), labels)
            if labels:
                estimator.classes_ = np.array(labels)
            estimator.coef_, estimator.intercept_ = t["coef"].numpy(), t["intercept"].numpy()
            rows = estimator.coef_.shape[0]
            if labels and rows not in (len(labels), 1 if len(labels) == 2 else len(labels)):
                raise ValueError(f"coef has {rows} rows for {len(labels)} labels in config.json")
            if config.get("encoder"):
                from pipeline.encoder import Encoder

                mean = t["elmo_mean"].numpy()
                encoder = Encoder.from_pretrained(d / config["encoder"])
                elmo = PooledElmo(encoder, mean, t["elmo_scale"].numpy(), pairs=pairs)
                if mean.shape != (elmo.dim,):
                    raise ValueError(f"elmo_mean has {mean.shape[0]} values, the encoder gives {elmo.dim}")
        except (KeyError, ValueError) as e:
            raise PipelineError(f"{d / 'model.safetensors'}: weights do not match {VOCAB_FILE} ({e})") from None
        model = cls(cfg, word, char, estimator, float(config.get("C", 1.0)), elmo, pairs)
        width = model._features([(["a"], ["a"]) if pairs else ["a"]]).shape[1]  # what the weights must take
        if estimator.coef_.shape[-1] != width:
            raise PipelineError(
                f"{d / 'model.safetensors'}: its weights take {estimator.coef_.shape[-1]} features, but {VOCAB_FILE} "
                f"and config.json (pairs: {str(pairs).lower()}) give {width}: the directory was edited or mixed"
            )
        if "thresholds" in t:
            model.thresholds = t["thresholds"].numpy()
        model.range = tuple(config["range"]) if config.get("range") else None  # type: ignore[assignment]
        model.config = config
        return model


def _estimator(target: str, C: float, labels: list[str]):
    """Logistic regression (a ``label``), one per label (``labels``) or ridge regression (a
    ``score``) at inverse regularisation ``C``."""
    if target == "labels":
        return OneVsRest(C, labels)
    if target == "score":
        from sklearn.linear_model import Ridge

        return Ridge(alpha=1.0 / (2.0 * C))
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000)


def fit_linear(job: FinetuneJob, with_elmo: bool) -> dict:
    """Fit TF-IDF + a linear model (``with_elmo``: + the pooled biLM layers of the job's encoder),
    save, and return the same result as a neural finetune run (one "epoch" per C)."""
    start = time.time()
    splits = job.read_splits(uses_encoder=with_elmo)
    elmo = PooledElmo(job.encoder, layers=job.layer_cache, pairs=splits.pairs) if with_elmo else None
    model, history = LinearModel.fit(job.cfg, splits.train, splits.dev, splits.labels, elmo, job.say)
    best = 1 + [h["C"] for h in history].index(model.C)
    return fitted_result(job, model, splits, start, history, best, C=model.C)
