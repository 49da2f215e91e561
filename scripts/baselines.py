"""The simple strong baselines of the results tables, measured on the same files as our models.

    python scripts/baselines.py ner-crf --train T --dev D --test E [--json OUT]
    python scripts/baselines.py tfidf --train T --dev D --test E [--json OUT]

ner-crf: a feature CRF (sklearn-crfsuite: `pip install -e '.[baselines]'`): per token the word, its
lower case, shape, prefixes and suffixes up to 3 characters, and the same for ±2 neighbours;
L-BFGS with c1 = c2 = 0.1, 100 iterations; no pretraining, no gazetteers. Scored with the
pipeline's entity-level seqeval scores.
tfidf: the pipeline's own TF-IDF + logistic regression model (`elmo finetune --set model=tfidf`).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time

from pipeline.errors import PipelineError, run_main


def _shape(w: str) -> str:
    return re.sub(r"(.)\1+", r"\1", re.sub(r"[A-Z]", "X", re.sub(r"[a-z]", "x", re.sub(r"[0-9]", "d", w))))


def token_features(sent: list[str], i: int) -> dict:
    feats = {"bias": 1.0}
    for k in (-2, -1, 0, 1, 2):
        j = i + k
        if not 0 <= j < len(sent):
            feats[f"{k}:pad"] = 1.0
            continue
        w = sent[j]
        feats.update(
            {
                f"{k}:w": w,
                f"{k}:lower": w.lower(),
                f"{k}:shape": _shape(w),
                f"{k}:title": w.istitle(),
                f"{k}:upper": w.isupper(),
                f"{k}:digit": w.isdigit(),
            }
        )
        for n in (1, 2, 3):
            feats[f"{k}:pre{n}"], feats[f"{k}:suf{n}"] = w[:n], w[-n:]
    return feats


def ner_crf(train: str, dev: str, test: str, **read_options) -> dict:
    """The feature CRF trained on ``train``, scored on ``dev`` and ``test`` (CoNLL files read with
    ``read_options``: those of pipeline.data.tags.read_conll)."""
    try:
        import sklearn_crfsuite
    except ImportError:
        raise PipelineError("ner-crf needs sklearn-crfsuite: pip install -e '.[baselines]'") from None
    from pipeline.data.tags import read_conll
    from pipeline.tasks.metrics import ner_scores

    data = {
        "train": read_conll(train, **read_options),
        "dev": read_conll(dev, **read_options),
        "test": read_conll(test, **read_options),
    }
    start = time.time()
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100)
    crf.fit([[token_features(s, i) for i in range(len(s))] for s in data["train"].sentences], data["train"].tags)
    out = {
        "model": "feature CRF (sklearn-crfsuite, c1=c2=0.1, 100 iterations)",
        "train_seconds": round(time.time() - start, 1),
    }
    for split in ("dev", "test"):
        pred = crf.predict([[token_features(s, i) for i in range(len(s))] for s in data[split].sentences])
        out[split] = ner_scores(data[split].tags, [list(p) for p in pred])
    return out


def tfidf(args) -> dict:
    from pipeline.config import load_finetune_config
    from pipeline.train.finetune import finetune

    files = {"data.train": args.train, "data.dev": args.dev, "data.test": args.test}
    fields = {"data.text_field": args.text_field, "data.label_field": args.label_field}
    cfg = load_finetune_config(None, {"task": "classify", "model": "tfidf", **files, **fields})
    with tempfile.TemporaryDirectory() as d:
        r = finetune(cfg, f"{d}/m", progress=False)
    return {
        "model": f"TF-IDF + logistic regression (C={r['C']} picked on dev)",
        "train_seconds": r["seconds"],
        "dev": r["dev"],
        "test": r["test"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", choices=["ner-crf", "tfidf"])
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--test", required=True)
    p.add_argument("--text-field", default="sentence")
    p.add_argument("--label-field", default="label")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    result = ner_crf(args.train, args.dev, args.test) if args.baseline == "ner-crf" else tfidf(args)
    metric = "f1" if args.baseline == "ner-crf" else "accuracy"
    print(
        f"{result['model']}: dev {metric} {result['dev'][metric]:.4f}, test {metric} "
        f"{result['test'][metric]:.4f} ({result['train_seconds']} s)"
    )
    if args.json:
        from pipeline.io import write_json_atomic

        write_json_atomic(args.json, result, "baseline scores")
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
