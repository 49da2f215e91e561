"""Downstream metrics: entity-level NER scores (seqeval, conlleval-equivalent), per-token tagging
scores and classification scores (scikit-learn)."""

from __future__ import annotations

from pipeline.data.tags import Scheme


def ner_scores(gold: list[list[str]], pred: list[list[str]], scheme: Scheme = "iob2") -> dict:
    """Entity-level precision/recall/F1, overall (micro) and per type.

    Tags are first converted to IOB2 so every scheme is scored alike; seqeval's default mode
    matches the conlleval script (a chunk counts only with its exact span and type).
    """
    from seqeval.metrics import f1_score, precision_score, recall_score
    from seqeval.metrics.sequence_labeling import get_entities

    from pipeline.data.tags import convert

    if scheme != "iob2":
        gold = [convert(g, scheme, "iob2") for g in gold]
        pred = [convert(p, scheme, "iob2") for p in pred]
    z = {"zero_division": 0}  # no predicted (or gold) entities → 0, without a warning
    out = {
        "precision": precision_score(gold, pred, **z),
        "recall": recall_score(gold, pred, **z),
        "f1": f1_score(gold, pred, **z),
        "per_type": {},
    }
    types = sorted({t for seq in gold + pred for t, _, _ in get_entities(seq)})
    for t in types:
        g = [[tag if tag.endswith("-" + t) else "O" for tag in seq] for seq in gold]
        p = [[tag if tag.endswith("-" + t) else "O" for tag in seq] for seq in pred]
        out["per_type"][t] = {
            "precision": precision_score(g, p, **z),
            "recall": recall_score(g, p, **z),
            "f1": f1_score(g, p, **z),
            "support": sum(1 for seq in g for _ in get_entities(seq)),
        }
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}


def chunk_like(labels: list[str]) -> bool:
    """Whether a tag set reads as chunks (O and B-/I-/E-/S-X tags, at least one B- or I-): then
    span scores are meaningful beside token accuracy."""
    from pipeline.data.tags import TAG_LIKE

    return all(TAG_LIKE.match(t) for t in labels) and any(t[:2] in ("B-", "I-") for t in labels)


def per_label(labels: list[str], precision, recall, f1, support) -> dict:
    """{label: {precision, recall, f1, support}} from scikit-learn's per-label arrays."""
    return {
        x: {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f), 6), "support": int(n)}
        for x, p, r, f, n in zip(labels, precision, recall, f1, support)
    }


def tag_scores(gold: list[list[str]], pred: list[list[str]], labels: list[str]) -> dict:
    """Token accuracy, per-tag precision/recall/F1/support and, for chunk-like tags (B-/I-/O), span
    precision/recall/F1 (seqeval's conlleval-equivalent default mode)."""
    from sklearn.metrics import precision_recall_fscore_support

    g = [t for seq in gold for t in seq]
    p = [t for seq in pred for t in seq]
    correct = sum(a == b for a, b in zip(g, p))
    prec, rec, f1, support = precision_recall_fscore_support(g, p, labels=labels, zero_division=0)
    out: dict = {
        "accuracy": round(correct / len(g), 6) if g else 0.0,
        "tokens": len(g),
        "per_tag": per_label(labels, prec, rec, f1, support),
    }
    if chunk_like(labels):
        from seqeval.metrics import f1_score, precision_score, recall_score

        z = {"zero_division": 0}
        out["span_precision"] = round(float(precision_score(gold, pred, **z)), 6)
        out["span_recall"] = round(float(recall_score(gold, pred, **z)), 6)
        out["span_f1"] = round(float(f1_score(gold, pred, **z)), 6)
    return out


def positive_label(labels: list[str]) -> str | None:
    """The positive class of a binary label set: 1, true, yes, positive, entailment or paraphrase
    (any case) where one of the two is so named, else the one that sorts last; None unless binary."""
    if len(labels) != 2:
        return None
    named = [x for x in labels if x.lower() in ("1", "true", "yes", "positive", "entailment", "paraphrase")]
    return named[0] if len(named) == 1 else sorted(labels)[-1]


def classification_scores(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1/support and the confusion matrix (rows
    gold, columns predicted) with scikit-learn; for two labels also the F1 of the positive class
    (:func:`positive_label`)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    out = {
        "accuracy": round(float(accuracy_score(gold, pred)), 6),
        "macro_f1": round(float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)), 6),
        "per_label": per_label(labels, *precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)),
        "labels": labels,
        "confusion": confusion_matrix(gold, pred, labels=labels).tolist(),
    }
    positive = positive_label(labels)
    if positive is not None:
        f1 = f1_score(gold, pred, labels=[positive], average="macro", zero_division=0)
        out.update(positive=positive, positive_f1=round(float(f1), 6))
    return out


def regression_scores(gold: list[float], pred: list[float]) -> dict:
    """Pearson's r, Spearman's rho (0 where a side is constant) and the mean squared error."""
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    g, p = np.asarray(gold, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    constant = len(g) < 2 or np.ptp(g) == 0 or np.ptp(p) == 0
    r = 0.0 if constant else float(pearsonr(g, p)[0])
    rho = 0.0 if constant else float(spearmanr(g, p)[0])
    return {"pearson": round(r, 6), "spearman": round(rho, 6), "mse": round(float(np.mean((g - p) ** 2)), 6)}


def scores_on_test(model, test) -> dict:
    """A model's predictions and scores on the test split (TaskData, or None: no test split), as
    the ``test_predictions`` / ``test`` / ``test_targets`` entries of a finetune result."""
    if test is None:
        return {}
    pred = model.predict(test.sentences)
    return {"test_predictions": pred, "test": model.scores(test, pred), "test_targets": test.targets}


def multi_hot(targets: list[list[str]], labels: list[str]):
    """(N, K) 0/1 matrix of label lists."""
    import numpy as np

    index = {x: k for k, x in enumerate(labels)}
    y = np.zeros((len(targets), len(labels)), dtype=np.int8)
    for i, t in enumerate(targets):
        for x in t:
            if x in index:
                y[i, index[x]] = 1
    return y


def multilabel_scores(gold: list[list[str]], pred: list[list[str]], labels: list[str]) -> dict:
    """Jaccard accuracy (the mean per example of |pred ∩ gold| / |pred ∪ gold|, 1 when both are
    empty: SemEval-2018 E-c's official score), micro- and macro-F1, and per-label scores."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    g, p = multi_hot(gold, labels), multi_hot(pred, labels)
    both, either = (g & p).sum(axis=1), (g | p).sum(axis=1)
    jaccard = [1.0 if u == 0 else i / u for i, u in zip(both.tolist(), either.tolist())]
    prec, rec, f1, support = precision_recall_fscore_support(g, p, zero_division=0)
    z = {"zero_division": 0}
    return {
        "jaccard": round(sum(jaccard) / len(jaccard), 6) if jaccard else 0.0,
        "micro_f1": round(float(f1_score(g, p, average="micro", **z)), 6),
        "macro_f1": round(float(f1_score(g, p, average="macro", **z)), 6),
        "per_label": per_label(labels, prec, rec, f1, support),
    }


THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 … 0.95


def tune_thresholds(probs, gold: list[list[str]], labels: list[str], passes: int = 2) -> list[float]:
    """Per-label decision thresholds that maximise the Jaccard accuracy of ``probs`` (N, K) on
    ``gold``: each label's threshold in turn over :data:`THRESHOLDS`, the others held, twice over
    (coordinate ascent from 0.5; a tie keeps the threshold nearest 0.5)."""
    import numpy as np

    g = multi_hot(gold, labels).astype(bool)
    t = np.full(len(labels), 0.5)

    def jaccard(pred) -> float:
        u = (g | pred).sum(axis=1)
        return float(np.where(u == 0, 1.0, (g & pred).sum(axis=1) / np.maximum(u, 1)).mean())

    for _ in range(passes):
        for k in range(len(labels)):
            best = (-1.0, 0.0, t[k])
            for c in THRESHOLDS:
                t[k] = c
                best = max(best, (jaccard(probs >= t), -abs(c - 0.5), c))
            t[k] = best[2]
    return [float(x) for x in t]
