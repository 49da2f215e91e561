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
  output     the same with ELMo also at the task BiLSTM's output (elmo_output: true)
  adapted    the same with a domain-adapted biLM (--adapted TASK=DIR, made by `elmo adapt`)
  finetuned  the same with the biLM finetuned too (finetune_encoder: true)
  linear     TF-IDF + the frozen biLM's layers pooled (mean, max), logistic regression (model: linear)
  auto       the default: TF-IDF, linear and the BiLSTM ("both") trained, the best on dev kept; its
             run records every candidate's dev and test scores (--small-data prints them)

``--train-size N`` trains on N training examples drawn with the run's seed (the small-data table);
runs of different sizes belong in different --out files.

Each task's settings come from its preset (pipeline/configs/presets/<task>.yaml); ``--set key=value``
overrides them for every run (except the keys the rows set, refused). Results are written after
every run (atomically) and runs already in --out with the same encoder, vectors and overrides are
skipped, so an interrupted sweep resumes where it stopped. "s / run" is whole runs: the first ELMo
run of a task also computes the frozen biLM's layers, which later runs of that task reuse.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

from pipeline.config import load_finetune_config, load_params, parse_set
from pipeline.errors import PipelineError, run_main
from pipeline.io import is_json, write_json_atomic

SECTION = {"conll2003": "finetune_ner", "sst5": "finetune_sentiment", "sst2": "finetune_sentiment"}
TASK_NAME = {"conll2003": "CoNLL-2003 NER", "sst5": "SST-5", "sst2": "SST-2"}
ROWS = {  # row → (finetune settings, its label in the table)
    "baseline": (None, None),
    "lookup": (
        {
            "inputs.use": "both",
            "inputs.word_vectors": "lookup",
            "inputs.char_encoder": "none",
            "training.grad_clip": None,
        },
        "frozen word2vec lookup + ELMo (the earlier inputs, for reference)",
    ),
    "word2vec": (
        {"inputs.use": "word2vec", "model": "bilstm"},
        "ours without ELMo: trainable words + casing + char CNN",
    ),
    "elmo-only": ({"inputs.use": "elmo", "model": "bilstm"}, "ELMo only (+ char CNN)"),
    "both": ({"inputs.use": "both", "model": "bilstm"}, "ours + ELMo (frozen biLM)"),
    "output": (
        {"inputs.use": "both", "head.elmo_output": True, "model": "bilstm"},
        "ours + ELMo at the input and the task BiLSTM's output",
    ),
    "adapted": ({"inputs.use": "both", "model": "bilstm"}, "ours + ELMo, biLM adapted to the task's text"),
    "finetuned": (
        {"inputs.use": "both", "training.finetune_encoder": True, "model": "bilstm"},
        "ours + ELMo, biLM finetuned",
    ),
    "linear": ({"inputs.use": "both", "model": "linear"}, "linear: TF-IDF + pooled ELMo layers, logistic regression"),
    "auto": ({"inputs.use": "both", "model": "auto"}, "auto (the default): best of TF-IDF / linear / BiLSTM on dev"),
}
BASELINE_LABEL = {
    "conll2003": "feature CRF",
    "sst5": "TF-IDF + logistic regression",
    "sst2": "TF-IDF + logistic regression",
}
ROW_KEYS = {"training.seed", "inputs.encoder", "inputs.word2vec", "model"}.union(
    *(s for s, _ in ROWS.values() if s)
)  # not for --set


def row_of(run: dict) -> str:
    """The run's row; runs of files written before rows existed are ``inputs=X`` (other recipes)."""
    return run.get("row") or f"inputs={run['inputs']}"


def label_of(task: str, row: str) -> str:
    if row == "baseline":
        return BASELINE_LABEL[task]
    return ROWS[row][1] if row in ROWS else f"{row} (an earlier version of this script: see the README)"


def metric_of(task: str) -> str:
    return "f1" if task == "conll2003" else "accuracy"


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def table(results: dict) -> str:
    lines = ["| data (test) | model | dev | test | s / run | seeds |", "|---|---|---|---|---|---|"]
    all_runs = results.get("runs", [])
    rows = list(ROWS) + sorted({row_of(r) for r in all_runs} - set(ROWS))
    for task in SECTION:
        for row in rows:
            runs = [r for r in all_runs if r["task_name"] == task and row_of(r) == row]
            if not runs:
                continue
            metric = metric_of(task)
            dev = mean_sd([100 * r["dev"][metric] for r in runs])
            test = mean_sd([100 * r["test"][metric] for r in runs])
            seconds = statistics.mean(r["seconds"] for r in runs)
            lines.append(
                f"| {TASK_NAME[task]} | {label_of(task, row)} | {dev} | {test} | "
                f"{seconds:,.0f} | {len(runs)}{' (deterministic)' if row == 'baseline' else ''} |"
            )
    return "\n".join(lines)


def baseline_run(task: str, cfg) -> dict:
    """The feature CRF (NER) or TF-IDF + LR (classification) on the task's files."""
    start = time.time()
    if task == "conll2003":
        spec = importlib.util.spec_from_file_location("baselines", Path(__file__).with_name("baselines.py"))
        baselines = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(baselines)
        r = baselines.ner_crf(
            cfg.data.train,
            cfg.data.dev,
            cfg.data.test,
            token_col=cfg.data.token_column,
            label_col=cfg.data.label_column,
            scheme=cfg.data.tag_scheme,
            encoding_errors=cfg.data.encoding_errors,
        )
    else:
        from pipeline.train.finetune import finetune

        with tempfile.TemporaryDirectory() as tmp:
            r = finetune(
                load_finetune_config(None, {"model": "tfidf"}, cfg),
                Path(tmp) / "model",
                progress=False,
                log=lambda m: None,
            )
    return {
        "dev": r["dev"],
        "test": r["test"],
        "seconds": round(time.time() - start, 1),
        **({"C": r["C"]} if "C" in r else {}),
    }


class Sweep:
    """The runs of one results file: which are done, and running the missing ones."""

    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.results = json.loads(self.out.read_text()) if self.out.is_file() else {"runs": []}
        self.overrides = parse_set(args.set)
        if ROW_KEYS & set(self.overrides):
            raise PipelineError(
                f"--set {', '.join(sorted(ROW_KEYS & set(self.overrides)))}: set by the rows "
                "or by --encoder/--word2vec/--seeds, not by --set"
            )
        self.adapted = parse_adapted(args.adapted)
        self.encoders: dict = {}  # path → Encoder, loaded once
        self.caches: dict = {}  # encoder path → frozen biLM layers shared by the current task's runs

    def provenance(self, row: str, task: str) -> dict:
        """What a run's numbers depend on besides task, row and seed (a resumed run must match it)."""
        encoder = (
            None
            if row in ("baseline", "word2vec")
            else self.adapted.get(task)
            if row == "adapted"
            else self.args.encoder
        )
        return {
            "encoder_dir": encoder,
            "word2vec": None if row == "baseline" else self.args.word2vec,
            "overrides": self.overrides,
            "train_size": self.args.train_size,
        }

    def done(self, task: str, row: str, seed: int) -> bool:
        if row == "baseline" and self.args.train_size:
            return True  # the small-data table takes TF-IDF from the auto runs' candidates
        same = self.provenance(row, task)
        return any(
            r["task_name"] == task
            and r.get("row") == row
            and (row == "baseline" or r["seed"] == seed)
            and all(r.get(k) == v for k, v in same.items())
            for r in self.results["runs"]
        )

    def encoder(self, path: str):
        from pipeline.encoder import Encoder

        if path not in self.encoders:
            self.encoders[path] = Encoder.from_pretrained(path)
            self.results.setdefault("encoders", {})[path] = self.encoders[path].config.get("training")
        return self.encoders[path]

    def run(self, task: str, row: str, seed: int) -> dict:
        base = getattr(load_params_for(task), SECTION[task])
        if row == "baseline":
            return baseline_run(task, load_finetune_config(None, self.overrides, base))
        from pipeline.train.finetune import finetune
        from pipeline.word2vec import load_word2vec_lookup

        encoder_dir = self.provenance(row, task)["encoder_dir"]
        if row == "adapted" and encoder_dir is None:
            raise PipelineError(f"the adapted row of {task} needs --adapted {task}=DIR (an `elmo adapt` output)")
        settings = {
            **self.overrides,
            **ROWS[row][0],
            "training.seed": seed,
            "inputs.encoder": encoder_dir,
            "inputs.word2vec": self.args.word2vec,
        }
        cfg = load_finetune_config(None, settings, base)
        encoder = self.encoder(encoder_dir) if cfg.inputs.use != "word2vec" else None
        cache = None if cfg.training.finetune_encoder else self.caches.setdefault(encoder_dir, {})
        inputs = (encoder, load_word2vec_lookup(self.args.word2vec, seed) if cfg.inputs.use != "elmo" else None)
        with tempfile.TemporaryDirectory() as tmp:
            if self.args.train_size:
                cfg = load_finetune_config(None, {"data.train": subsample(cfg, self.args.train_size, seed, tmp)}, cfg)
            r = finetune(cfg, Path(tmp) / "model", progress=False, inputs=inputs, layer_cache=cache, log=lambda m: None)
        return {k: v for k, v in r.items() if k not in ("test_predictions", "test_targets")}

    def sweep(self) -> None:
        for task in self.args.tasks:
            self.caches.clear()  # one task's layers at a time
            for row in self.args.rows:
                for seed in self.args.seeds:
                    if self.done(task, row, seed):
                        continue
                    r = {
                        **self.run(task, row, seed),
                        "task_name": task,
                        "row": row,
                        "seed": seed,
                        **self.provenance(row, task),
                    }
                    self.results["runs"].append(r)
                    write_json_atomic(self.out, self.results, "results", is_ours=is_json)
                    metric = metric_of(task)
                    print(
                        f"{task} {row} seed {seed}: dev {r['dev'][metric]:.4f} test {r['test'][metric]:.4f} "
                        f"({r['seconds']:.0f} s)",
                        flush=True,
                    )


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
    p.add_argument("--train-size", type=int, help="train on this many examples, drawn with the run's seed")
    p.add_argument(
        "--small-data",
        nargs="*",
        metavar="FILE",
        help="print the small-data table (TF-IDF / linear / BiLSTM / auto) of these auto-row files",
    )
    args = p.parse_args(argv)
    if args.small_data:
        print(small_data_table([json.loads(Path(f).read_text()) for f in args.small_data]))
        return 0
    if not args.table:
        Sweep(args).sweep()
    print(table(json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}))
    return 0


def subsample(cfg, n: int, seed: int, tmp: str) -> str:
    """A TSV of ``n`` training rows of ``cfg.data.train`` drawn with ``seed`` (header kept), in ``tmp``."""
    import random

    lines = Path(cfg.data.train).read_text(encoding="utf-8").splitlines()
    head, rows = (lines[:1], lines[1:]) if cfg.data.header is not False else ([], lines)
    if n > len(rows):
        raise PipelineError(f"--train-size {n}: {cfg.data.train} has only {len(rows)} rows")
    path = Path(tmp) / f"train{n}_seed{seed}{Path(cfg.data.train).suffix}"
    path.write_text("\n".join(head + random.Random(seed).sample(rows, n)) + "\n", encoding="utf-8")
    return str(path)


def small_data_table(files: list[dict]) -> str:
    """Rows: training size; columns: test accuracy (mean ± sd over seeds) of each auto candidate and
    of auto's choice, with how often auto kept each."""
    names = ("tfidf", "linear", "bilstm", "ensemble")
    lines = [
        "| task | train size | TF-IDF + LR | linear | BiLSTM (+ ELMo) | ensemble | auto (default) | auto kept "
        "| seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for results in files:
        runs = [r for r in results.get("runs", []) if r.get("row") == "auto"]
        for task in sorted({r["task_name"] for r in runs}):
            rs = [r for r in runs if r["task_name"] == task]
            size = rs[0].get("train_size") or "all"
            cells = [mean_sd([100 * r["candidates"][n]["test"] for r in rs]) for n in names]
            kept = ", ".join(
                f"{n} ×{sum(r['model'] == n for r in rs)}" for n in names if any(r["model"] == n for r in rs)
            )
            lines.append(
                f"| {TASK_NAME[task]} | {size} | {' | '.join(cells)} | "
                f"{mean_sd([100 * r['test']['accuracy'] for r in rs])} | {kept} | {len(rs)} |"
            )
    return "\n".join(lines)


def parse_adapted(items: list[str]) -> dict:
    """``--adapted TASK=DIR ...`` → {task: dir}."""
    out = {}
    for item in items:
        task, sep, path = item.partition("=")
        if not sep or not path or task not in SECTION:
            raise PipelineError(f"--adapted {item}: expected TASK=DIR with TASK one of {', '.join(SECTION)}")
        out[task] = path
    return out


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
