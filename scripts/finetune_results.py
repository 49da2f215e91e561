"""The README's downstream results table: each task × row × seed, one process, resumable.

    python scripts/finetune_results.py --encoder ENC_DIR --word2vec VECTORS \\
        --tasks conll2003 sst5 sst2 --rows baseline word2vec both --seeds 0 1 2 --out results/final.json
    python scripts/finetune_results.py --table --out results/final.json    # only print the table

Rows (each a model of the table; ``baseline`` is the simple strong model a user would try first):
  baseline   TF-IDF + logistic regression (classification) or the feature CRF (NER); deterministic,
             so it runs once, whatever --seeds says
  lookup     the earlier inputs, for reference: frozen per-token word2vec lookup + ELMo, no task
             characters, no gradient clipping
  word2vec   the strong baseline without ELMo: trainable word table + casing + task char CNN
  elmo-only  ELMo alone (+ the task char CNN)
  both       word2vec + ELMo from the frozen biLM (--encoder), learned scalar mix
  adapted    the same with a domain-adapted biLM (--adapted TASK=DIR, made by `elmo adapt`)
  finetuned  the same with the biLM finetuned too (finetune_encoder: true)

Each task's settings come from its preset (configs/presets/<task>.yaml); ``--set key=value``
overrides them for every run. Results are written after every run (atomically) and runs already
in --out are skipped, so an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import load_finetune_config, load_params, parse_set
from pipeline.errors import PipelineError, run_main
from pipeline.io import write_json_atomic

SECTION = {"conll2003": "finetune_ner", "sst5": "finetune_sentiment", "sst2": "finetune_sentiment"}
TASK_NAME = {"conll2003": "CoNLL-2003 NER", "sst5": "SST-5", "sst2": "SST-2"}
ROWS = {  # row → (finetune settings, its label in the table)
    "baseline": (None, None),
    "lookup": ({"inputs": "both", "word_vectors": "lookup", "char_encoder": "none", "grad_clip": None},
               "frozen word2vec lookup + ELMo (the earlier inputs, for reference)"),
    "word2vec": ({"inputs": "word2vec"}, "ours without ELMo: trainable words + casing + char CNN"),
    "elmo-only": ({"inputs": "elmo"}, "ELMo only (+ char CNN)"),
    "both": ({"inputs": "both"}, "ours + ELMo (frozen biLM)"),
    "adapted": ({"inputs": "both"}, "ours + ELMo, biLM adapted to the task's text"),
    "finetuned": ({"inputs": "both", "finetune_encoder": True}, "ours + ELMo, biLM finetuned"),
}
BASELINE_LABEL = {"conll2003": "feature CRF", "sst5": "TF-IDF + logistic regression",
                  "sst2": "TF-IDF + logistic regression"}
OLD_INPUTS_ROW = {"word2vec": "word2vec", "elmo": "elmo-only", "both": "both"}  # files written before rows


def row_of(run: dict) -> str:
    return run.get("row") or OLD_INPUTS_ROW[run["inputs"]]


def metric_of(task: str) -> str:
    return "f1" if task == "conll2003" else "accuracy"


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def table(results: dict) -> str:
    lines = ["| data (test) | model | dev | test | s / run | seeds |", "|---|---|---|---|---|---|"]
    for task in SECTION:
        for row, (_, label) in ROWS.items():
            runs = [r for r in results.get("runs", []) if r["task_name"] == task and row_of(r) == row]
            if not runs:
                continue
            metric = metric_of(task)
            dev = mean_sd([100 * r["dev"][metric] for r in runs])
            test = mean_sd([100 * r["test"][metric] for r in runs])
            seconds = statistics.mean(r["seconds"] for r in runs)
            lines.append(f"| {TASK_NAME[task]} | {label or BASELINE_LABEL[task]} | {dev} | {test} | "
                         f"{seconds:,.0f} | {len(runs)} |")
    return "\n".join(lines)


def baseline_run(task: str, cfg) -> dict:
    """The feature CRF (NER) or TF-IDF + LR (classification) on the task's files."""
    start = time.time()
    if task == "conll2003":
        sys.path.insert(0, str(Path(__file__).parent))
        from baselines import ner_crf

        r = ner_crf(cfg.train, cfg.dev, cfg.test)
    else:
        from pipeline.train.finetune import finetune

        with tempfile.TemporaryDirectory() as tmp:
            r = finetune(load_finetune_config(None, {"model": "tfidf"}, cfg), Path(tmp) / "model", progress=False)
    return {"dev": r["dev"], "test": r["test"], "seconds": round(time.time() - start, 1),
            **({"C": r["C"]} if "C" in r else {})}


class Sweep:
    """The runs of one results file: which are done, and running the missing ones."""

    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.results = json.loads(self.out.read_text()) if self.out.is_file() else {"runs": []}
        self.overrides = parse_set(args.set)
        self.adapted = dict(item.split("=", 1) for item in args.adapted)
        self.encoders: dict = {}  # path → Encoder, loaded once
        self.caches: dict = {}  # (task, encoder path) → frozen biLM layers shared by that task's runs

    def done(self, task: str, row: str, seed: int) -> bool:
        return any(r["task_name"] == task and row_of(r) == row and (row == "baseline" or r["seed"] == seed)
                   for r in self.results["runs"])

    def encoder(self, path: str):
        from pipeline.encoder import Encoder

        if path not in self.encoders:
            self.encoders[path] = Encoder.from_pretrained(path)
        return self.encoders[path]

    def run(self, task: str, row: str, seed: int) -> dict:
        base = getattr(load_params_for(task), SECTION[task])
        if row == "baseline":
            return baseline_run(task, load_finetune_config(None, self.overrides, base))
        from pipeline.tasks.model import load_word2vec_lookup
        from pipeline.train.finetune import finetune

        encoder_dir = self.args.encoder
        if row == "adapted":
            if task not in self.adapted:
                raise PipelineError(f"the adapted row of {task} needs --adapted {task}=DIR (an `elmo adapt` output)")
            encoder_dir = self.adapted[task]
        settings = {**self.overrides, **ROWS[row][0], "seed": seed, "encoder": encoder_dir,
                    "word2vec": self.args.word2vec}
        cfg = load_finetune_config(None, settings, base)
        encoder = self.encoder(encoder_dir) if cfg.inputs != "word2vec" else None
        cache = None if cfg.finetune_encoder else self.caches.setdefault((task, encoder_dir), {})
        inputs = (encoder, load_word2vec_lookup(self.args.word2vec, seed) if cfg.inputs != "elmo" else None)
        with tempfile.TemporaryDirectory() as tmp:
            r = finetune(cfg, Path(tmp) / "model", progress=False, inputs=inputs, layer_cache=cache)
        return {k: v for k, v in r.items() if k not in ("test_predictions", "test_targets")}

    def sweep(self) -> None:
        self.results.update({"encoder": self.args.encoder, "adapted": self.adapted, "word2vec": self.args.word2vec,
                             "overrides": self.overrides})
        for task in self.args.tasks:
            for row in self.args.rows:
                for seed in self.args.seeds:
                    if self.done(task, row, seed):
                        continue
                    r = {**self.run(task, row, seed), "task_name": task, "row": row, "seed": seed}
                    self.results["runs"].append(r)
                    write_json_atomic(self.out, self.results)
                    metric = metric_of(task)
                    print(f"{task} {row} seed {seed}: dev {r['dev'][metric]:.4f} test {r['test'][metric]:.4f} "
                          f"({r['seconds']:.0f} s)", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", help="exported encoder directory (the frozen biLM)")
    p.add_argument("--adapted", nargs="*", default=[], metavar="TASK=DIR", help="adapted encoder per task")
    p.add_argument("--word2vec", help="word2vec vectors")
    p.add_argument("--tasks", nargs="+", default=list(SECTION), choices=list(SECTION))
    p.add_argument("--rows", nargs="+", default=["baseline", "word2vec", "both"], choices=list(ROWS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="results/finetune.json")
    p.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = p.parse_args(argv)
    if not args.table:
        Sweep(args).sweep()
    print(table(json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}))
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
