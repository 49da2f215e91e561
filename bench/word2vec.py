"""Benchmark: gensim skip-gram words/s with 1 and 2 worker threads on a real corpus, plus evaluation.

    .venv/bin/python bench/word2vec.py                      # WikiText-2 from ../shared/data
    .venv/bin/python bench/word2vec.py --preset ptb --repeats 3

Settings follow gensim's text8 reference run (skip-gram, 100 dims, window 5, 5 epochs,
5 negatives, min_count 5). Prints, per worker count, the median words/s over the repeats
(raw corpus words × epochs / training wall time), the ratio of 2 workers to 1, and the
intrinsic evaluation of the last run's vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.config import Word2VecConfig, load_params  # noqa: E402
from pipeline.data.prepare import prepare_corpus  # noqa: E402
from pipeline.word2vec import evaluate_vectors, train_word2vec  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="wikitext2", help="a data preset (pipeline/configs/presets)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(f"presets: [{args.preset}]\n")
        params = load_params(tmp / "params.yaml")
        os.chdir(REPO)  # presets name ../shared/data relative to the repository
        stats = prepare_corpus(params.prepare, tmp / "prepared", progress=False)
        corpus = tmp / "prepared" / "train.txt"
        print(
            f"corpus: {args.preset} train split, {stats['train_tokens']:,} tokens, "
            f"{stats['train_sentences']:,} sentences, {os.cpu_count()} CPUs"
        )

        results = {"preset": args.preset, "corpus_tokens": stats["train_tokens"], "runs": {}}
        model = None
        for workers in (int(w) for w in args.workers.split(",")):
            cfg = Word2VecConfig(
                vector_size=100, window=5, epochs=args.epochs, negative=5, min_count=5, workers=workers, seed=1
            )
            rates = []
            for _ in range(args.repeats):
                model, s = train_word2vec(corpus, cfg, progress=False)
                rates.append(s["train_words_per_sec"])
            results["runs"][workers] = {"words_per_sec_median": statistics.median(rates), "all": rates}
            print(
                f"workers={workers}: median {statistics.median(rates):,.0f} words/s "
                f"over {args.repeats} runs ({', '.join(f'{r:,.0f}' for r in rates)})"
            )
        runs = results["runs"]
        if 1 in runs and 2 in runs:
            ratio = runs[2]["words_per_sec_median"] / runs[1]["words_per_sec_median"]
            results["ratio_2_to_1"] = round(ratio, 3)
            print(f"ratio 2 workers / 1 worker: {ratio:.2f}x")
        ev = evaluate_vectors(model.wv)
        results["evaluation"] = ev
        results["vocab_size"] = len(model.wv)
        print(f"vectors: {len(model.wv):,} words")
        print(
            f"analogy accuracy {ev['analogy_accuracy']:.4f} (semantic {ev['analogy_semantic']:.4f}, "
            f"syntactic {ev['analogy_syntactic']:.4f}, OOV {ev['analogy_oov_rate']:.1%})"
        )
        print(
            f"WordSim-353 spearman {ev['wordsim353_spearman']:.4f} (OOV {ev['wordsim353_oov_rate']:.1%}); "
            f"SimLex-999 spearman {ev['simlex999_spearman']:.4f} (OOV {ev['simlex999_oov_rate']:.1%})"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
