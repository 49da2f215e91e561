"""Small data of another domain, and transfer: the checks a new user's first data would make.

    python scripts/transfer_check.py small --seeds 0 1 2 --out results/transfer.json
    python scripts/transfer_check.py transfer --seeds 0 --out results/transfer.json
    python scripts/transfer_check.py table --out results/transfer.json

- ``small``: customer reviews of products (SentEval CR, ../shared/data/senteval/cr.tsv), shuffled
  with the seed and split 700 train / 300 dev / the rest (2,771) test; TF-IDF, linear, BiLSTM and
  auto (the default) as the ``elmo finetune`` defaults make them.
- ``transfer``: trained on SST-2 (movie reviews, all 6,920 training sentences, dev picks; the
  three models and their ensemble, auto = the best on SST-2 dev), tested
  on sentences of other sources with the same two labels: CR (products), MPQA (opinion phrases)
  and MR (Rotten Tomatoes snippets, lower-cased). Reports accuracy and the share of the most
  predicted label (a model collapsing to one class shows it there).

Encoder and word vectors: the ``make repro`` outputs unless --encoder / --word2vec say otherwise.
Results are written after every run; runs already in --out are skipped (resumable).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path

from pipeline.config import FinetuneConfig, load_finetune_config
from pipeline.errors import PipelineError, run_main
from pipeline.io import is_json, write_json_atomic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SST2 = {split: SHARED / "sst" / f"sst2_{split}.tsv" for split in ("train", "dev", "test")}
TRANSFER_SETS = {
    "CR": SHARED / "senteval" / "cr.tsv",
    "MPQA": SHARED / "senteval" / "mpqa.tsv",
    "MR": SHARED / "senteval" / "mr.tsv",
}
SST2_LABEL = {"positive": "1", "negative": "0"}  # SentEval's label names → SST-2's
MODELS = ("tfidf", "linear", "bilstm")


def split_cr(seed: int, tmp: Path) -> dict:
    rows = (SHARED / "senteval" / "cr.tsv").read_text(encoding="utf-8").splitlines()
    head, rows = rows[0], rows[1:]
    random.Random(seed).shuffle(rows)
    parts = {"train": rows[:700], "dev": rows[700:1000], "test": rows[1000:]}
    for name, part in parts.items():
        (tmp / f"{name}.tsv").write_text("\n".join([head] + part) + "\n", encoding="utf-8")
    return {name: str(tmp / f"{name}.tsv") for name in parts}


def as_sst2_labels(path: Path, tmp: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    out = [lines[0]] + [f"{t}\t{SST2_LABEL[y]}" for t, y in (line.rsplit("\t", 1) for line in lines[1:])]
    (tmp / path.name).write_text("\n".join(out) + "\n", encoding="utf-8")
    return str(tmp / path.name)


class Runs:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.results = json.loads(self.out.read_text()) if self.out.is_file() else {"runs": []}
        self.inputs = None

    def done(self, kind: str, seed: int) -> bool:
        return any(
            r["kind"] == kind and r["seed"] == seed and r["encoder"] == self.args.encoder for r in self.results["runs"]
        )

    def add(self, run: dict) -> None:
        self.results["runs"].append({**run, "encoder": self.args.encoder, "word2vec": self.args.word2vec})
        write_json_atomic(self.out, self.results, "results", is_ours=is_json)

    def load_inputs(self, seed: int):
        from pipeline.encoder import Encoder
        from pipeline.word2vec import load_word2vec_lookup

        if self.inputs is None:
            self.inputs = Encoder.from_pretrained(self.args.encoder)
        return self.inputs, load_word2vec_lookup(self.args.word2vec, seed)

    def train(self, files: dict, model: str, seed: int, out: Path, cache: dict) -> dict:
        from pipeline.train.finetune import finetune

        cfg = load_finetune_config(
            None,
            {
                "task": "classify",
                "model": model,
                "training.seed": seed,
                **{f"data.{k}": v for k, v in files.items()},
                "inputs.encoder": self.args.encoder,
                "inputs.word2vec": self.args.word2vec,
            },
        )
        return finetune(cfg, out, progress=False, inputs=self.load_inputs(seed), layer_cache=cache, log=lambda m: None)

    def small(self, seed: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            files = split_cr(seed, Path(tmp))
            r = self.train(files, "auto", seed, Path(tmp) / "m", {})
        row = {m: {"dev": c["dev"], "test": c["test"]} for m, c in r["candidates"].items()}  # ensemble included
        row["auto"] = {"dev": r["dev"]["accuracy"], "test": r["test"]["accuracy"], "kept": r["model"]}
        self.add({"kind": "small", "seed": seed, "models": row})
        print(f"small CR seed {seed}: " + ", ".join(f"{m} {v['test']:.4f}" for m, v in row.items()), flush=True)

    def transfer(self, seed: int) -> None:
        from pipeline.tasks.ensemble import EnsembleClassifier
        from pipeline.tasks.models import load_task_model

        row, cache, models = {}, {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            sets = {name: as_sst2_labels(path, tmp) for name, path in TRANSFER_SETS.items()}
            for model in MODELS:
                self.train({k: str(v) for k, v in SST2.items()}, model, seed, tmp / model, cache)
                models[model] = load_task_model(tmp / model)
                models[model].share_layers(cache)
            models["ensemble"] = EnsembleClassifier(FinetuneConfig(task="classify", model="ensemble"), models)
            for name, net in models.items():
                row[name] = {
                    "dev": accuracy(net, str(SST2["dev"]))[0],
                    "SST-2 test": accuracy(net, str(SST2["test"]))[0],
                }
                for set_name, path in sets.items():
                    acc, top = accuracy(net, path)
                    row[name][set_name] = {"accuracy": round(acc, 6), "most_predicted_share": round(top, 4)}
        order = [*MODELS, "ensemble"]
        kept = max(order, key=lambda m: (row[m]["dev"], -order.index(m)))  # what auto keeps
        row["auto"] = {**row[kept], "kept": kept}
        self.add({"kind": "transfer", "seed": seed, "models": row})
        print(
            f"transfer seed {seed}: "
            + ", ".join(f"{m} " + " ".join(f"{n} {row[m][n]['accuracy']:.3f}" for n in TRANSFER_SETS) for m in row),
            flush=True,
        )


def accuracy(net, path: str) -> tuple[float, float]:
    """(accuracy, share of the most predicted label) of ``net`` on a labelled TSV."""

    from pipeline.tasks.kinds import task_named

    data = task_named("classify").read(FinetuneConfig(task="classify"), path, net.tokenize)
    pred = [p for p, _ in net.predict(data.sentences)]
    acc = sum(p == y for p, y in zip(pred, data.targets)) / len(pred)
    return acc, max(pred.count(label) for label in set(pred)) / len(pred)


def table(results: dict) -> str:
    def ms(values):
        return f"{100 * statistics.mean(values):.2f}" + (
            f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
        )

    lines = []
    small = [r for r in results["runs"] if r["kind"] == "small"]
    if small:
        lines += ["| CR, 700 train / 300 dev / 2,771 test | dev | test | seeds |", "|---|---|---|---|"]
        for m in (*MODELS, "ensemble", "auto"):
            lines.append(
                f"| {m} | {ms([r['models'][m]['dev'] for r in small])} | "
                f"{ms([r['models'][m]['test'] for r in small])} | {len(small)} |"
            )
    transfer = [r for r in results["runs"] if r["kind"] == "transfer"]
    if transfer:
        names = list(TRANSFER_SETS)
        lines += [
            "",
            "| trained on SST-2 | SST-2 test | " + " | ".join(names) + " | mean | largest one-label share |",
            "|---" * (len(names) + 4) + "|",
        ]
        for m in (*MODELS, "ensemble", "auto"):
            rows = [r["models"][m] for r in transfer if m in r["models"]]
            if not rows:
                continue
            accs = [statistics.mean(x[n]["accuracy"] for n in names) for x in rows]
            share = max(x[n]["most_predicted_share"] for x in rows for n in names)
            lines.append(
                f"| {m} | {ms([x['SST-2 test'] for x in rows])} | "
                + " | ".join(ms([x[n]["accuracy"] for x in rows]) for n in names)
                + f" | {ms(accs)} | {share:.2f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["small", "transfer", "table"])
    p.add_argument("--encoder", default="models/encoder")
    p.add_argument("--word2vec", default="data/word2vec/vectors.bin")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", default="results/transfer.json")
    args = p.parse_args(argv)
    if not SHARED.is_dir():
        raise PipelineError(f"{SHARED}: the shared data sets are not there")
    runs = Runs(args)
    if args.what != "table":
        for seed in args.seeds:
            if not runs.done(args.what, seed):
                getattr(runs, args.what)(seed)
    print(table(runs.results))
    return 0


if __name__ == "__main__":
    run_main(main)
