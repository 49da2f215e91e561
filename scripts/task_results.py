"""Results of the task shapes beyond NER and sentence classification, each beside its simple
baseline on the same split: the CLI defaults (``model: auto``) over seeds, the baseline once.

    python scripts/task_results.py --encoder models/encoder --word2vec data/word2vec/vectors.bin \\
        --data pos chunk --seeds 0 1 2 --out results/tasks.json
    python scripts/task_results.py --table --out results/tasks.json    # only print the table

Data sets (read in place from ../shared/data):
  pos    CoNLL-2003 part-of-speech tags (column 1) as `tag`; baseline: each word's most frequent tag
  chunk  CoNLL-2003 chunk tags (column 2) as `tag`; the same baseline

Results are written after every run (atomically); runs already in --out are skipped, so an
interrupted sweep resumes. Every default but the files, the column and the seed is the CLI's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from pipeline.config import FinetuneConfig
from pipeline.errors import run_main
from pipeline.io import write_json_atomic

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CONLL = SHARED / "conll2003"
DATA = {  # name → (what it is, the finetune settings, the baseline model, the scores shown)
    "pos": (
        "CoNLL-2003 part of speech (tag)",
        dict(task="tag", train=str(CONLL / "train.txt"), dev=str(CONLL / "valid.txt"), test=str(CONLL / "test.txt"))
        | {"label_column": 1},
        "majority",
        ("accuracy",),
    ),
    "chunk": (
        "CoNLL-2003 chunks (tag)",
        dict(task="tag", train=str(CONLL / "train.txt"), dev=str(CONLL / "valid.txt"), test=str(CONLL / "test.txt"))
        | {"label_column": 2},
        "majority",
        ("accuracy", "span_f1"),
    ),
}
BASELINE_LABEL = {"majority": "each word's most frequent tag"}


def run_one(name: str, model: str, seed: int, args, inputs, cache: dict) -> dict:
    from pipeline.train.finetune import finetune

    _, settings, _, shown = DATA[name]
    cfg = FinetuneConfig(**settings, model=model, seed=seed, encoder=args.encoder, word2vec=args.word2vec)
    with tempfile.TemporaryDirectory() as tmp:
        r = finetune(cfg, Path(tmp) / "m", progress=False, inputs=inputs, layer_cache=cache, log=lambda m: None)
    return {
        "data": name,
        "model": model,
        "seed": seed,
        "kept": r.get("model", model),
        "dev": {k: r["dev"][k] for k in shown},
        "test": {k: r["test"][k] for k in shown},
        "candidates": r.get("candidates"),
        "epochs_run": r.get("epochs_run"),
        "seconds": r["seconds"],
    }


def sweep(args) -> None:
    from pipeline.tasks.job import load_inputs

    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    results.update(encoder=args.encoder, word2vec=args.word2vec)
    done = {(r["data"], r["model"], r["seed"]) for r in results["runs"]}
    inputs = load_inputs(FinetuneConfig(encoder=args.encoder, word2vec=args.word2vec))
    cache: dict = {}  # the frozen biLM's layers per sentence, shared by every run (same encoder)
    for name in args.data:
        baseline = DATA[name][2]
        todo = [(baseline, 0)] + [("auto", s) for s in args.seeds]
        for model, seed in todo:
            if (name, model, seed) in done:
                continue
            r = run_one(name, model, seed, args, inputs, cache)
            results["runs"].append(r)
            write_json_atomic(out, results)
            print(json.dumps(r), flush=True)


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(results: dict) -> str:
    lines = ["| data (test) | model | score | dev | test | s / run | seeds |", "|---|---|---|---|---|---|---|"]
    for name, (what, _, baseline, shown) in DATA.items():
        for model in (baseline, "auto"):
            runs = [r for r in results.get("runs", []) if r["data"] == name and r["model"] == model]
            if not runs:
                continue
            label = BASELINE_LABEL.get(model, model) if model != "auto" else "auto (the default)"
            if model == "auto":
                kept = sorted({r["kept"] for r in runs})
                label += f", kept {', '.join(kept)}"
            for k in shown:
                dev = mean_sd([100 * r["dev"][k] for r in runs])
                test = mean_sd([100 * r["test"][k] for r in runs])
                secs = statistics.mean(r["seconds"] for r in runs)
                lines.append(f"| {what} | {label} | {k} | {dev} | {test} | {secs:,.0f} | {len(runs)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="models/encoder")
    p.add_argument("--word2vec", default="data/word2vec/vectors.bin")
    p.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="results/tasks.json")
    p.add_argument("--table", action="store_true", help="only print the table of --out")
    args = p.parse_args(argv)
    if not args.table:
        sweep(args)
    print(table(json.loads(Path(args.out).read_text())))


if __name__ == "__main__":
    run_main(main)
