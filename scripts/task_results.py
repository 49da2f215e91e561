"""Results of the task shapes beyond NER and sentence classification, each beside its simple
baseline on the same split: the CLI defaults (``model: auto``) over seeds, the baseline once.

    python scripts/task_results.py --encoder models/encoder --word2vec data/word2vec/vectors.bin \\
        --data pos chunk --seeds 0 1 2 --out results/tasks.json
    python scripts/task_results.py --table --out results/tasks.json    # only print the table

Data sets (read in place from ../shared/data):
  pos    CoNLL-2003 part-of-speech tags (column 1) as `tag`; baseline: each word's most frequent tag
  chunk  CoNLL-2003 chunk tags (column 2) as `tag`; the same baseline
  sick-e    SICK entailment as `pair`; baseline: TF-IDF pair features + logistic regression
  sick-r    SICK relatedness as `regress` on pairs; baseline: the same features + ridge regression
  emotions  SemEval-2018 E-c as `multilabel` (its dev file as test, 10% of train as dev, seed 0);
            baseline: TF-IDF + one logistic regression per label

``--train-size N`` trains on the first N training examples (sentences or rows; the full dev and
test files); pos and chunk train on the first 2,000 sentences unless it says otherwise (the size
of a labelled set a user brings; minutes instead of hours per run on a 2-core CPU). Results are
written after every run (atomically); runs already in --out with the same settings are skipped,
so an interrupted sweep resumes. Every default but the files, the columns and the seed is the
CLI's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pipeline.config import load_finetune_config
from pipeline.errors import run_main
from pipeline.io import write_json_atomic

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CONLL = SHARED / "conll2003"
CONLL_FILES = {
    f"data.{k}": str(CONLL / f"{f}.txt") for k, f in (("train", "train"), ("dev", "valid"), ("test", "test"))
}
DATA = {  # name → (what it is, the finetune settings, the baseline model, the scores shown)
    "pos": (
        "CoNLL-2003 part of speech (tag)",
        {"task": "tag", **CONLL_FILES, "data.label_column": 1},
        "majority",
        ("accuracy",),
    ),
    "chunk": (
        "CoNLL-2003 chunks (tag)",
        {"task": "tag", **CONLL_FILES, "data.label_column": 2},
        "majority",
        ("accuracy", "span_f1"),
    ),
}
SICK = SHARED / "sick"
SICK_FILES = {
    "data.train": str(SICK / "SICK_train.txt"),
    "data.dev": str(SICK / "SICK_trial.txt"),
    "data.test": str(SICK / "SICK_test_annotated.txt"),
}
SICK_COLUMNS = {
    "data.format": "tsv",
    "data.text_field": 1,
    "data.text_pair_field": 2,
}  # no header: id, A, B, score, label
DATA.update(
    {
        "sick-e": (
            "SICK entailment (pair)",
            {"task": "pair", **SICK_FILES, **SICK_COLUMNS, "data.label_field": 4},
            "tfidf",
            ("accuracy",),
        ),
        "sick-r": (
            "SICK relatedness (regress)",
            {"task": "regress", **SICK_FILES, **SICK_COLUMNS, "data.label_field": 3},
            "tfidf",
            ("pearson", "spearman"),
        ),
    }
)
EC = SHARED / "semeval2018_ec"
DATA["emotions"] = (
    "SemEval-2018 E-c emotions (multilabel)",
    # no gold test labels: its dev file is the test set, and a dev set is carved from train (seeded)
    {
        "task": "multilabel",
        "data.train": str(EC / "2018-E-c-En-train.txt"),
        "data.dev": "carve:0.1",
        "data.test": str(EC / "2018-E-c-En-dev.txt"),
        "data.format": "tsv",
        "data.text_field": "Tweet",
    },
    "tfidf",
    ("jaccard", "micro_f1", "macro_f1"),
)


def carve_dev(train: str, fraction: float, tmp: Path) -> tuple[str, str]:
    """A header-row file split into train and dev files in ``tmp``: ``fraction`` of its rows, drawn
    with seed 0 (the same dev set for every run), go to dev."""
    import random

    lines = Path(train).read_text(encoding="utf-8").splitlines(keepends=True)
    rows = lines[1:]
    dev = set(random.Random(0).sample(range(len(rows)), round(fraction * len(rows))))
    (tmp / "train.tsv").write_text(lines[0] + "".join(r for i, r in enumerate(rows) if i not in dev), encoding="utf-8")
    (tmp / "dev.tsv").write_text(lines[0] + "".join(r for i, r in enumerate(rows) if i in dev), encoding="utf-8")
    return str(tmp / "train.tsv"), str(tmp / "dev.tsv")


def first_examples(path: str, n: int, out: Path, conll: bool, header: bool = True) -> str:
    """The first ``n`` examples of ``path`` (CoNLL sentences, or rows after a header row if any) in ``out``."""
    text = Path(path).read_text(encoding="utf-8")
    if conll:
        blocks = [b for b in text.split("\n\n") if b.strip() and not b.lstrip().startswith("-DOCSTART-")]
        out.write_text("\n\n".join(blocks[:n]) + "\n", encoding="utf-8")
    else:
        lines = text.splitlines(keepends=True)
        out.write_text("".join(lines[: n + int(header)]), encoding="utf-8")
    return str(out)


# CoNLL-2003's 14,041 training sentences take about 2 hours a run on 2 cores; its first 2,000 are
# the size of a labelled set a user brings (and of a small treebank)
TRAIN_SIZE = {"pos": 2000, "chunk": 2000}


def run_one(name: str, model: str, seed: int, args, inputs, cache: dict) -> dict:
    from pipeline.train.finetune import finetune

    _, settings, _, shown = DATA[name]
    size = args.train_size or TRAIN_SIZE.get(name)
    with tempfile.TemporaryDirectory() as tmp:
        if str(settings["data.dev"]).startswith("carve:"):
            train, dev = carve_dev(settings["data.train"], float(settings["data.dev"][6:]), Path(tmp))
            settings = {**settings, "data.train": train, "data.dev": dev}
        if size:
            conll = settings["task"] in ("tag", "ner")
            header = not isinstance(settings.get("data.text_field"), int)
            train = first_examples(settings["data.train"], size, Path(tmp) / "train", conll, header)
            settings = {**settings, "data.train": train}
        inputs_files = {"inputs.encoder": args.encoder, "inputs.word2vec": args.word2vec}
        cfg = load_finetune_config(None, {**settings, "model": model, "training.seed": seed, **inputs_files})
        r = finetune(cfg, Path(tmp) / "m", progress=False, inputs=inputs, layer_cache=cache, log=lambda m: None)
    return {
        "data": name,
        "title": DATA[name][0],
        "baseline": DATA[name][2],
        "shown": list(shown),
        "train_size": size,
        "train_examples": r["data"]["train"],
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
    for r in results["runs"]:  # what the table needs, for runs recorded without it
        what, _, baseline, shown = DATA[r["data"]]
        r.setdefault("title", what), r.setdefault("baseline", baseline), r.setdefault("shown", list(shown))
    done = {
        (r["data"], r["model"], r["seed"])
        for r in results["runs"]
        if r.get("train_size") == (args.train_size or TRAIN_SIZE.get(r["data"]))
    }
    inputs = load_inputs(load_finetune_config(None, {"inputs.encoder": args.encoder, "inputs.word2vec": args.word2vec}))
    cache: dict = {}  # the frozen biLM's layers per sentence, shared by every run (same encoder)
    # each data set's baseline, then one seed of every data set before the next seed
    todo = [(name, DATA[name][2], 0) for name in args.data]
    todo += [(name, "auto", seed) for seed in args.seeds for name in args.data]
    for name, model, seed in todo:
        if (name, model, seed) not in done:
            r = run_one(name, model, seed, args, inputs, cache)
            results["runs"].append(r)
            write_json_atomic(out, results, "results")
            print(json.dumps(r), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="models/encoder")
    p.add_argument("--word2vec", default="data/word2vec/vectors.bin")
    p.add_argument("--data", nargs="+", choices=list(DATA), default=list(DATA))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="results/tasks.json")
    p.add_argument("--train-size", type=int, help="train on the first N training examples (pos, chunk: 2,000)")
    p.add_argument("--table", action="store_true", help="only print the table of --out")
    args = p.parse_args(argv)
    if not args.table:
        sweep(args)
    from benchmarks_page import tasks_table  # scripts/ is on the path when this script runs

    print(tasks_table(json.loads(Path(args.out).read_text())))


if __name__ == "__main__":
    run_main(main)
