"""Benchmark: time per token of embedding, tagging and classifying one sentence of 100, 1,000 and
10,000 tokens, so a long line costs in proportion to its length (never quadratically).

    .venv/bin/python bench/length_scaling.py                       # the default biLM, random weights
    .venv/bin/python bench/length_scaling.py --lengths 100 1000 10000 --repeats 3

For each length it times, on one sentence of that many real PTB words (cycled), the median of
``--repeats`` runs of: ``Encoder.embed`` (every layer), a BiLSTM-CRF entity tagger's ``predict``
(word vectors + ELMo; the CRF's Viterbi decoding included), the most-frequent-tag tagger and a
TF-IDF classifier. Prints seconds and microseconds per token, and the ratio of the per-token time
at each length to that at the shortest: near 1 is linear, near the length ratio is quadratic.
The task models are trained here for one epoch on the shipped samples (their speed does not
depend on how well they learned). The CPU's features are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PTB = REPO.parent / "shared" / "data" / "ptb" / "ptb.train.txt"
SAMPLES = REPO / "data" / "samples"


def words(n: int) -> list[str]:
    """``n`` PTB words (the sample's words when PTB is absent), cycled."""
    text = PTB.read_text(encoding="utf-8") if PTB.is_file() else (SAMPLES / "ner" / "train.conll").read_text()
    pool = [w for w in text.split() if w.isalpha()][:50_000]
    return list(itertools.islice(itertools.cycle(pool), n))


def train_models(encoder_dir: Path, vectors: Path, tmp: Path) -> dict:
    from pipeline.config import load_finetune_config
    from pipeline.tasks.models import load_task_model
    from pipeline.train.finetune import finetune

    def cfg(task, model, folder, suffix, **more):
        files = {f"data.{s}": str(SAMPLES / folder / f"{s}.{suffix}") for s in ("train", "dev")}
        inputs = {"inputs.encoder": str(encoder_dir), "inputs.word2vec": str(vectors)}
        return load_finetune_config(None, {"task": task, "model": model, **files, **inputs, **more})

    runs = {
        "BiLSTM-CRF tagger (ner)": cfg("ner", "bilstm", "ner", "conll", **{"training.epochs": 1}),
        "most-frequent tag (tag)": cfg("tag", "majority", "ner", "conll"),
        "TF-IDF classifier": cfg("classify", "tfidf", "sentiment", "tsv"),
    }
    out = {}
    for name, c in runs.items():
        finetune(c, tmp / name.split()[0], progress=False, log=lambda m: None)
        out[name] = load_task_model(tmp / name.split()[0])
    return out


def main(argv=None) -> None:
    from pipeline.cpu import features_line, median_seconds
    from pipeline.encoder import Encoder

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default=str(REPO / "models" / "encoder"))
    p.add_argument("--word2vec", default=str(REPO / "data" / "word2vec" / "vectors.bin"))
    p.add_argument("--lengths", nargs="+", type=int, default=[100, 1000, 10000])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    enc = Encoder.from_pretrained(args.encoder)
    with tempfile.TemporaryDirectory() as tmp:
        models = train_models(Path(args.encoder), Path(args.word2vec), Path(tmp))
        timed = {"Encoder.embed": lambda s: enc.embed([s])}
        timed |= {name: (lambda m: lambda s: m.predict([s]))(m) for name, m in models.items()}
        command = " ".join(["bench/length_scaling.py", *sys.argv[1:]])
        print(f"CPU: {features_line()}; median of {args.repeats}; `{command}`")
        print(
            "| what | "
            + " | ".join(f"{n:,} tokens: s (µs/token)" for n in args.lengths)
            + " | per-token ratio, longest / shortest |"
        )
        print("|---|" + "---|" * (len(args.lengths) + 1))
        for name, fn in timed.items():
            per = []
            for n in args.lengths:
                s = words(n)
                fn(s)  # warm: caches, lazy imports
                per.append((median_seconds(lambda: fn(s), args.repeats), n))
            cells = " | ".join(f"{t:.3f} ({1e6 * t / n:.1f})" for t, n in per)
            ratio = (per[-1][0] / per[-1][1]) / (per[0][0] / per[0][1])
            print(f"| {name} | {cells} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
