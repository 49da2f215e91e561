"""The README's downstream results: each task × inputs (word2vec, elmo, both) × seeds, one process.

    python scripts/finetune_results.py --encoder ENC_DIR --word2vec VECTORS \\
        --tasks conll2003 sst5 sst2 --seeds 0 1 2 --out results/finetune.json

Each task's settings come from its preset (configs/presets/<task>.yaml); ``--set key=value``
overrides them for every run. Results are written after every run (atomically) and runs already
in --out are skipped, so an interrupted sweep resumes. ``--table`` only prints the table.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.config import load_finetune_config, load_params, parse_set
from pipeline.errors import run_main
from pipeline.io import write_json_atomic

SECTION = {"conll2003": "finetune_ner", "sst5": "finetune_sentiment", "sst2": "finetune_sentiment"}
SETTINGS = ("word2vec", "elmo", "both")


def table(results: dict) -> str:
    lines = ["| task | test metric | word2vec only | ELMo only | word2vec + ELMo | seeds |",
             "|---|---|---|---|---|---|"]
    for task in SECTION:
        runs = [r for r in results.get("runs", []) if r["task_name"] == task]
        if not runs:
            continue
        metric = "f1" if task == "conll2003" else "accuracy"
        cells, seeds = [], set()
        for setting in SETTINGS:
            vals = [100 * r["test"][metric] for r in runs if r["inputs"] == setting]
            seeds.add(len(vals))
            if not vals:
                cells.append("–")
            else:
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells.append(f"{statistics.mean(vals):.2f} ± {sd:.2f}")
        name = {"conll2003": "CoNLL-2003 NER", "sst5": "SST-5", "sst2": "SST-2"}[task]
        label = "entity F1" if metric == "f1" else "accuracy"
        lines.append(f"| {name} | {label} | " + " | ".join(cells) + f" | {'/'.join(str(s) for s in sorted(seeds))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", help="exported encoder directory")
    p.add_argument("--word2vec", help="word2vec vectors")
    p.add_argument("--tasks", nargs="+", default=list(SECTION), choices=list(SECTION))
    p.add_argument("--inputs", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="results/finetune.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = p.parse_args(argv)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {"runs": []}
    if args.table:
        print(table(results))
        return 0
    from pipeline.encoder import Encoder
    from pipeline.tasks.model import load_word2vec_lookup
    from pipeline.train.finetune import finetune

    encoder = Encoder.from_pretrained(args.encoder)
    overrides = parse_set(args.set)
    results["encoder"] = {"path": args.encoder, "training": encoder.config.get("training")}
    results["word2vec"] = args.word2vec
    results["overrides"] = overrides
    for task in args.tasks:
        base = getattr(load_params_for(task), SECTION[task])
        cache: dict = {}  # frozen biLM layers, shared by every ELMo run of this task
        for setting in args.inputs:
            for seed in args.seeds:
                if any(r["task_name"] == task and r["inputs"] == setting and r["seed"] == seed for r in results["runs"]):
                    continue
                cfg = load_finetune_config(None, {**overrides, "inputs": setting, "seed": seed,
                                                  "encoder": args.encoder, "word2vec": args.word2vec}, base)
                w2v = load_word2vec_lookup(args.word2vec, seed)
                t0 = time.time()
                with tempfile.TemporaryDirectory() as tmp:
                    r = finetune(cfg, Path(tmp) / "model", progress=False, inputs=(encoder, w2v), layer_cache=cache)
                r = {k: v for k, v in r.items() if k not in ("test_predictions", "test_targets")}
                r["task_name"] = task
                results["runs"].append(r)
                write_json_atomic(out, results)
                metric = "f1" if task == "conll2003" else "accuracy"
                print(f"{task} {setting} seed {seed}: dev {r['dev'][metric]:.4f} test {r['test'][metric]:.4f} "
                      f"({r['epochs_run']} epochs, best {r['best_epoch']}, {time.time() - t0:.0f} s)", flush=True)
    print(table(results))
    return 0


def load_params_for(task: str):
    """The defaults with only this task's preset applied (a temporary params file naming it)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(f"presets: [{task}]\n")
    try:
        return load_params(f.name)
    finally:
        Path(f.name).unlink()


if __name__ == "__main__":
    run_main(main)
