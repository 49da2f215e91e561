"""The generated tables of docs/benchmarks.md, rewritten from the files in results/.

    python scripts/benchmarks_page.py            # rewrite every generated block of the page
    python scripts/benchmarks_page.py --check    # exit 1 naming the first stale block, else 0

In the page each generated table sits between a line ``<!-- generated: NAME -->`` and a line
``<!-- end: NAME -->``; NAME is one of BLOCKS below, each made from the results files it lists (the
JSON written by scripts/finetune_results.py, scripts/transfer_check.py and by hand from
scripts/baselines.py runs, and the text tables of bench/gpu_check.sh and bench/tokenizers.py).
Everything outside the markers is left byte for byte as it is. Standard library only, so the
check is fast (tests/test_benchmarks_page.py runs it).

Scores are in %: mean ± sample standard deviation over seeds where a row has
several runs, the best of a group in bold where the page's table marks it.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "results"

START = re.compile(r"<!-- generated: (?P<name>[A-Za-z0-9_-]+) -->")
END = re.compile(r"<!-- end: (?P<name>[A-Za-z0-9_-]+) -->")


class PageError(Exception):
    """A page or results file the script cannot work with (one line)."""


# ---------------------------------------------------------------------------------------------
# formatting


def load(results: Path, name: str):
    path = results / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PageError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise PageError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None


def mean_sd(values: list[float]) -> str:
    """``m ± sd`` (sample sd, 2 decimals) over several values, the value alone for one."""
    if len(values) > 1:
        return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
    return f"{values[0]:.2f}"


def seconds(value: float) -> str:
    return f"{value:,.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def bold_best(cells: list[list], groups: list, columns: list[int], across: bool = False) -> list[list[str]]:
    """Rows of ``(text, value)`` cells (value None: never bold) → text rows, with the highest value in
    bold: of each column in ``columns`` within each group of rows (``groups[i]``: row i's group), or
    with ``across`` of all those columns together within each group."""

    def key(group, c):
        return group if across else (group, c)

    best: dict = {}
    for row, group in zip(cells, groups):
        for c in columns:
            value = row[c][1]
            if value is not None and value > best.get(key(group, c), float("-inf")):
                best[key(group, c)] = value
    out = []
    for row, group in zip(cells, groups):
        texts = []
        for c, (text, value) in enumerate(row):
            top = c in columns and value is not None and value == best.get(key(group, c))
            texts.append(f"**{text}**" if top else text)
        out.append(texts)
    return out


def scored(values: list[float]) -> tuple[str, float]:
    """A ``mean_sd`` cell and the mean it is ranked by, compared as printed."""
    return mean_sd(values), round(statistics.mean(values), 2)


def epochs(run: dict) -> str:
    if run.get("epochs_run") is None:
        return ""
    return f" ({run['epochs_run']} epochs, best {run['best_epoch']})"


# ---------------------------------------------------------------------------------------------
# the downstream results table (results/final.json, scripts/finetune_results.py)

TASKS = {"conll2003": "CoNLL-2003 NER", "sst5": "SST-5", "sst2": "SST-2"}
BASELINE = {"conll2003": "feature CRF", "sst5": "TF-IDF + logistic regression", "sst2": "TF-IDF + logistic regression"}
ROWS = {  # the rows of scripts/finetune_results.py, in its order, with their labels on this page
    "baseline": None,
    "lookup": "frozen word2vec lookup + ELMo (weak inputs, for reference)",
    "word2vec": "ours without ELMo: trainable words + casing + char CNN",
    "elmo-only": "ELMo only (+ char CNN)",
    "both": "ours + ELMo (frozen biLM)",
    "output": "ours + ELMo at the input and the task BiLSTM's output",
    "adapted": "ours + ELMo, biLM adapted to the task's text",
    "finetuned": "ours + ELMo, biLM finetuned",
    "linear": "linear: TF-IDF + pooled ELMo layers, logistic regression",
    "auto": "auto (the default): best of TF-IDF / linear / BiLSTM on dev",
}


def metric_of(task: str) -> str:
    return "f1" if task == "conll2003" else "accuracy"


def final_runs(results: Path) -> list[dict]:
    runs = load(results, "final.json")["runs"]
    for r in runs:
        if r.get("row") not in ROWS or r.get("task_name") not in TASKS:
            raise PageError(
                f"results/final.json: a run of task {r.get('task_name')!r}, row {r.get('row')!r} "
                "has no label in scripts/benchmarks_page.py (ROWS, TASKS)"
            )
    return runs


def block_final(results: Path) -> str:
    runs, rows = final_runs(results), []
    for task in TASKS:
        for row, label in ROWS.items():
            rs = [r for r in runs if r["task_name"] == task and r["row"] == row]
            if not rs:
                continue
            m = metric_of(task)
            rows.append(
                [
                    TASKS[task],
                    BASELINE[task] if row == "baseline" else label,
                    mean_sd([100 * r["dev"][m] for r in rs]),
                    mean_sd([100 * r["test"][m] for r in rs]),
                    seconds(statistics.mean(r["seconds"] for r in rs)),
                    f"{len(rs)}{' (deterministic)' if row == 'baseline' else ''}",
                ]
            )
    return table(["data (test)", "model", "dev", "test", "s / run", "seeds"], rows)


def block_final_conll_types(results: Path) -> str:
    runs = [r for r in final_runs(results) if r["task_name"] == "conll2003"]
    types = sorted({t for r in runs for t in r["test"]["per_type"]})
    rows = []
    for row, label in ROWS.items():
        rs = [r for r in runs if r["row"] == row]
        if rs:
            rows.append(
                [BASELINE["conll2003"] if row == "baseline" else label]
                + [f"{statistics.mean(100 * r['test']['per_type'][t]['f1'] for r in rs):.1f}" for t in types]
                + [str(len(rs))]
            )
    return table(["model"] + types + ["seeds"], rows)


# ---------------------------------------------------------------------------------------------
# one-seed baselines (results/baselines.json) and ELMo from the 55-minute biLM (finetune_wt2.json)

BASELINE_RUNS = {  # run name → (data, model) on this page, in the page's order
    "crf_full": (
        "CoNLL-2003 NER, full train",
        "feature CRF (`scripts/baselines.py ner-crf`: word, lower, shape, affixes ≤ 3, ±2 context; "
        "c1 = c2 = 0.1, 100 iterations)",
    ),
    "w2v_full": (
        "CoNLL-2003 NER, full train",
        "ours, `elmo finetune` with `--inputs word2vec` (trainable word table + casing + char CNN, BiLSTM-CRF)",
    ),
    "crf_1k": ("CoNLL-2003, first 1,000 train sentences", "feature CRF"),
    "before_1k": (
        "CoNLL-2003, first 1,000 train sentences",
        "weak inputs: frozen word2vec lookup + ELMo, no casing or char CNN (`make repro` encoder and vectors)",
    ),
    "after_1k": (
        "CoNLL-2003, first 1,000 train sentences",
        "ours: trainable word table + casing + char CNN + ELMo (`make repro` encoder and vectors)",
    ),
    "w2v_1k": ("CoNLL-2003, first 1,000 train sentences", "ours, `--inputs word2vec`"),
    "tfidf_sst2": ("SST-2", "TF-IDF + logistic regression (`--set model=tfidf`)"),
    "w2v_sst2": ("SST-2", "ours, `elmo finetune --task classify` with `--inputs word2vec` (BiLSTM + max-pool)"),
}


def baseline_runs(results: Path) -> dict:
    runs = {r["name"]: r for r in load(results, "baselines.json")["runs"]}
    missing = set(BASELINE_RUNS) - set(runs)
    if missing:
        raise PageError(f"results/baselines.json: no run named {', '.join(sorted(missing))}")
    return runs


def block_baselines(results: Path) -> str:
    runs = baseline_runs(results)
    cells, groups = [], []
    for name, (data, model) in BASELINE_RUNS.items():
        r = runs[name]
        cells.append(
            [
                (data, None),
                (model, None),
                (f"{100 * r['dev']:.2f}", round(100 * r["dev"], 2)),
                (f"{100 * r['test']:.2f}", round(100 * r["test"], 2)),
                (f"{seconds(r['seconds'])} s{epochs(r)}", None),
            ]
        )
        groups.append(data)
    return table(["data (test)", "model", "dev", "test", "time"], bold_best(cells, groups, [2, 3]))


def block_elmo_55min(results: Path) -> str:
    base = baseline_runs(results)
    wt2 = {(r["task_name"], r["inputs"]): r for r in load(results, "finetune_wt2.json")["runs"]}
    rows = [  # (data, model, dev, test, run)
        ("CoNLL-2003 NER", "feature CRF", base["crf_full"]["dev"], base["crf_full"]["test"], base["crf_full"]),
        (
            "CoNLL-2003 NER",
            "ours, word2vec inputs (the baselines table's run)",
            base["w2v_full"]["dev"],
            base["w2v_full"]["test"],
            base["w2v_full"],
        ),
        ("CoNLL-2003 NER", "ours, word2vec + ELMo (`--inputs both`, frozen biLM, learned scalar mix)")
        + _scores(wt2, "conll2003", "both"),
        (
            "SST-2",
            "TF-IDF + logistic regression",
            base["tfidf_sst2"]["dev"],
            base["tfidf_sst2"]["test"],
            base["tfidf_sst2"],
        ),
        ("SST-2", "ours, word2vec inputs") + _scores(wt2, "sst2", "word2vec"),
        ("SST-2", "ours, word2vec + ELMo") + _scores(wt2, "sst2", "both"),
    ]
    cells = [
        [
            (data, None),
            (model, None),
            (f"{100 * dev:.2f}", round(100 * dev, 2)),
            (f"{100 * test:.2f}", round(100 * test, 2)),
            (f"{seconds(run['seconds'])} s{epochs(run)}", None),
        ]
        for data, model, dev, test, run in rows
    ]
    return table(["data (test)", "model", "dev", "test", "time"], bold_best(cells, [r[0] for r in rows], [2, 3]))


def _scores(runs: dict, task: str, inputs: str) -> tuple:
    try:
        r = runs[task, inputs]
    except KeyError:
        raise PageError(f"results/finetune_wt2.json: no {task} run with inputs {inputs}") from None
    m = metric_of(task)
    return r["dev"][m], r["test"][m], r


# ---------------------------------------------------------------------------------------------
# domain adaptation on 1,000 CoNLL-2003 sentences (results/adapt_conll.json)

ADAPT_ROWS = {
    "word2vec": "word vectors (trainable table + casing + char CNN), `--inputs word2vec`",
    "encoder-lm": "+ ELMo, the WikiText-2 biLM (`--encoder runs/wikitext2-cpu/encoder-lm`)",
    "adapted": "+ ELMo, the same biLM adapted to CoNLL text (`--encoder runs/adapt/encoder-conll`)",
}


def block_adapt_conll(results: Path) -> str:
    adapt, crf = load(results, "adapt_conll.json"), baseline_runs(results)["crf_1k"]
    cells = [
        [
            ("feature CRF (`scripts/baselines.py ner-crf`, from the baselines table)", None),
            (f"{100 * crf['dev']:.2f}", round(100 * crf["dev"], 2)),
            (f"{100 * crf['test']:.2f}", round(100 * crf["test"], 2)),
            (seconds(crf["seconds"]), None),
            ("1 (deterministic)", None),
        ]
    ]
    for key, label in ADAPT_ROWS.items():
        runs = adapt["rows"][key]["runs"]
        extra = f" (+ {adapt['adaptation']['minutes']:.1f} min once)" if key == "adapted" else ""
        cells.append(
            [
                (label, None),
                scored([100 * r["dev_f1"] for r in runs]),
                scored([100 * r["test_f1"] for r in runs]),
                (seconds(statistics.mean(r["seconds"] for r in runs)) + extra, None),
                (str(len(runs)), None),
            ]
        )
    header = ["inputs (1,000 labelled CoNLL-2003 sentences)", "dev F1", "test F1", "s / run", "seeds"]
    return table(header, bold_best(cells, [0] * len(cells), [1, 2]))


# ---------------------------------------------------------------------------------------------
# small data and transfer (results/smalldata_sst2_*.json, sst5_auto.json, transfer.json)

SMALL_FILES = [
    "smalldata_sst2_250.json",
    "smalldata_sst2_500.json",
    "smalldata_sst2_1000.json",
    "smalldata_sst2_all.json",
    "sst5_auto.json",
]
CANDIDATES = ("tfidf", "linear", "bilstm", "ensemble")


def block_small_data(results: Path) -> str:
    rows = []
    for name in SMALL_FILES:
        runs = [r for r in load(results, name)["runs"] if r.get("row") == "auto"]
        if not runs:
            raise PageError(f"results/{name}: no runs of the auto row")
        for task in sorted({r["task_name"] for r in runs}):
            rs = [r for r in runs if r["task_name"] == task]
            kept = ", ".join(
                f"{n} ×{sum(r['model'] == n for r in rs)}" for n in CANDIDATES if any(r["model"] == n for r in rs)
            )
            rows.append(
                [TASKS[task], f"{rs[0].get('train_size') or 'all'}"]
                + [mean_sd([100 * r["candidates"][n]["test"] for r in rs]) for n in CANDIDATES]
                + [mean_sd([100 * r["test"]["accuracy"] for r in rs]), kept, str(len(rs))]
            )
    header = ["task", "train size", "TF-IDF + LR", "linear", "BiLSTM (+ ELMo)", "ensemble", "auto (default)"]
    return table(header + ["auto kept", "seeds"], rows)


TRANSFER_MODELS = (*CANDIDATES[:3], "ensemble", "auto")
TRANSFER_SETS = ("CR", "MPQA", "MR")


def transfer_runs(results: Path, kind: str) -> list[dict]:
    runs = [r for r in load(results, "transfer.json")["runs"] if r["kind"] == kind]
    if not runs:
        raise PageError(f"results/transfer.json: no runs of kind {kind}")
    return runs


def block_cr_small(results: Path) -> str:
    runs = transfer_runs(results, "small")
    rows = [
        [
            m,
            mean_sd([100 * r["models"][m]["dev"] for r in runs]),
            mean_sd([100 * r["models"][m]["test"] for r in runs]),
            str(len(runs)),
        ]
        for m in TRANSFER_MODELS
    ]
    return table(["CR, 700 train / 300 dev / 2,771 test", "dev", "test", "seeds"], rows)


def block_transfer(results: Path) -> str:
    runs, rows = transfer_runs(results, "transfer"), []
    for m in TRANSFER_MODELS:
        xs = [r["models"][m] for r in runs if m in r["models"]]
        means = [statistics.mean(x[n]["accuracy"] for n in TRANSFER_SETS) for x in xs]
        share = max(x[n]["most_predicted_share"] for x in xs for n in TRANSFER_SETS)
        rows.append(
            [m, mean_sd([100 * x["SST-2 test"] for x in xs])]
            + [mean_sd([100 * x[n]["accuracy"] for x in xs]) for n in TRANSFER_SETS]
            + [mean_sd([100 * v for v in means]), f"{share:.2f}"]
        )
    header = ["trained on SST-2", "SST-2 test", *TRANSFER_SETS, "mean", "largest one-label share"]
    return table(header, rows)


# ---------------------------------------------------------------------------------------------
# weak inputs (results/finetune.json, finetune_long.json, finetune_encoder.json)

WEAK_INPUTS = {"word2vec": "word2vec only", "elmo": "ELMo only", "both": "word2vec + ELMo"}
WEAK_TASKS = {
    "conll2003": ("CoNLL-2003 NER", "entity F1"),
    "sst5": ("SST-5", "accuracy"),
    "sst2": ("SST-2", "accuracy"),
}


def block_weak_inputs(results: Path) -> str:
    runs = load(results, "finetune.json")["runs"]
    cells = []
    for task, (name, metric_name) in WEAK_TASKS.items():
        row, seeds = [(name, None), (metric_name, None)], set()
        for inputs in WEAK_INPUTS:
            rs = [r for r in runs if r["task_name"] == task and r["inputs"] == inputs]
            if not rs:
                raise PageError(f"results/finetune.json: no {task} runs with inputs {inputs}")
            row.append(scored([100 * r["test"][metric_of(task)] for r in rs]))
            seeds.add(len(rs))
        cells.append(row + [("/".join(map(str, sorted(seeds))), None)])
    header = ["task", "test metric", *WEAK_INPUTS.values(), "seeds"]
    return table(header, bold_best(cells, list(range(len(cells))), [2, 3, 4], across=True))


def mix(run: dict) -> str:
    weights = (run.get("scalar_mix") or {}).get("weights")
    return " / ".join(f"{w:.2f}" for w in weights) if weights else "–"


def block_weak_inputs_long(results: Path) -> str:
    runs = {r["inputs"]: r for r in load(results, "finetune_long.json")["runs"] if r["task_name"] == "conll2003"}
    rows = [
        [
            label,
            f"{100 * runs[i]['dev']['f1']:.2f}",
            f"{100 * runs[i]['test']['f1']:.2f}",
            f"{runs[i]['epochs_run']} (best {runs[i]['best_epoch']})",
            seconds(runs[i]["seconds"]),
        ]
        for i, label in WEAK_INPUTS.items()
        if i in runs
    ]
    return table(["inputs (CoNLL-2003, seed 0)", "dev F1", "test F1", "epochs run (best)", "s"], rows)


def block_weak_inputs_finetuned_bilm(results: Path) -> str:
    frozen = [
        r
        for r in load(results, "finetune.json")["runs"]
        if r["task_name"] == "conll2003" and r["inputs"] == "both" and r["seed"] == 0
    ]
    tuned = load(results, "finetune_encoder.json")
    if not frozen:
        raise PageError("results/finetune.json: no conll2003 run with inputs both and seed 0")
    rows = [
        [
            label,
            f"{100 * r['dev']['f1']:.2f}",
            f"{100 * r['test']['f1']:.2f}",
            f"{r['epochs_run']} (best {r['best_epoch']})",
            seconds(r["seconds"]),
            mix(r),
        ]
        for label, r in (("frozen", frozen[0]), ("finetuned (`--finetune-encoder`)", tuned))
    ]
    header = ["biLM (CoNLL-2003, word2vec + ELMo, seed 0)", "dev F1", "test F1", "epochs run (best)", "s"]
    return table(header + ["scalar mix: token / LSTM 1 / LSTM 2"], rows)


# ---------------------------------------------------------------------------------------------
# biLM perplexities, from the encoder records of the results files

BILMS = [  # (label, file, where its record is, the results that use it)
    (
        "default corpus (Lee news), `make repro`",
        "smalldata_sst2_all.json",
        ("encoders", "models/encoder"),
        "small data, transfer",
    ),
    (
        "WikiText-2, `cpu`, 50 min",
        "finetune.json",
        ("encoder", "training"),
        "weak inputs",
    ),
    (
        "WikiText-2, `cpu`, 55 min",
        "finetune_wt2.json",
        ("encoder", "training"),
        "ELMo from the 55-minute biLM",
    ),
    (
        "WikiText-2, `cpu`, 2 hours",
        "final.json",
        ("encoders", "runs/wikitext2-cpu-2h/encoder-lm"),
        "the results table",
    ),
]


def block_bilm_perplexity(results: Path) -> str:
    rows = []
    for label, name, keys, used in BILMS:
        record = load(results, name)
        for key in keys:
            if not isinstance(record, dict) or key not in record:
                raise PageError(f"results/{name}: no encoder record at {' → '.join(keys)}")
            record = record[key]
        v, t = record["valid"], record["test"]
        rows.append(
            [
                label,
                f"{record['train_sentences']:,} / {record['train_tokens']:,}",
                f"{record['steps']:,}",
                f"{v['forward_ppl']:.1f} / {v['backward_ppl']:.1f} / {v['average_ppl']:.1f}",
                f"{t['test_forward_ppl']:.1f} / {t['test_backward_ppl']:.1f} / **{t['test_average_ppl']:.1f}**",
                used,
            ]
        )
    header = ["biLM", "train sentences / tokens", "step", "valid ppl fwd / bwd / avg", "test ppl fwd / bwd / avg"]
    return table(header + ["results that use it"], rows)


# ---------------------------------------------------------------------------------------------
# text tables of the bench scripts (results/gpu_check.txt, results/bench_tokenizers.txt)


def read_text(results: Path, name: str) -> list[str]:
    path = results / name
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise PageError(f"{path}: cannot read ({e.strerror})") from None


def block_gpu_check(results: Path) -> str:
    """bench/pretrain_throughput.py's tables as bench/gpu_check.sh appends them: a line naming the data,
    device and the bf16 matmul peak, a header line, one line per preset."""
    rows, peak = [], None
    for line in read_text(results, "gpu_check.txt"):
        found = re.search(r"bf16 matmul peak ([0-9.]+) GFLOP/s", line)
        if found:
            peak = float(found.group(1))
            continue
        fields = line.split()
        if not fields or fields[0] == "preset":
            continue
        if len(fields) != 10 or peak is None:
            raise PageError(f"results/gpu_check.txt: unexpected line {line!r}")
        preset, batch, params, ours, base, ratio, _, of_peak = fields[:8]
        straightforward = "–" if base == "nan" else f"{base} (ours {ratio.replace('x', '×')})"
        rows.append([f"`{preset}`", f"{int(batch):,}", params, ours, straightforward, of_peak, f"{peak / 1000:.0f}"])
    if not rows:
        raise PageError("results/gpu_check.txt: no rows")
    header = ["preset", "batch (tokens)", "parameters", "ours tokens/s", "straightforward tokens/s"]
    return table(header + ["ours, of bf16 matmul peak", "bf16 matmul peak, TFLOP/s"], rows)


def block_tokenizers(results: Path) -> str:
    rows = [line for line in read_text(results, "bench_tokenizers.txt") if line.startswith("|")]
    if len(rows) < 3:
        raise PageError("results/bench_tokenizers.txt: no table")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# token tags, pairs, scores, label sets (results/tasks.json, scripts/task_results.py)


def tasks_table(results: dict) -> str:
    """Each data set's simple baseline and the default (``model: auto``) over seeds, one row per
    score shown; every run records its data set's title, scores shown and baseline."""
    runs, rows = results.get("runs", []), []
    for data in dict.fromkeys(r["data"] for r in runs):
        mine = [r for r in runs if r["data"] == data]
        for size in sorted({r["train_examples"] for r in mine}):
            first = next(r for r in mine if r["train_examples"] == size)
            for model in (first["baseline"], "auto"):
                group = [r for r in mine if r["model"] == model and r["train_examples"] == size]
                if group:
                    rows += task_rows(group, model, size)
    header = ["data (test)", "train", "model", "score", "dev", "test", "s / run", "seeds"]
    return table(header, rows)


def task_rows(runs: list[dict], model: str, size: int) -> list[list[str]]:
    label = {"majority": "each word's most frequent tag", "tfidf": "TF-IDF + logistic / ridge regression"}
    name = label.get(model, model) if model != "auto" else "auto (the default)"
    if model == "auto":
        name += f", kept {', '.join(sorted({r['kept'] for r in runs}))}"
    out = []
    for k in runs[0]["shown"]:
        dev = mean_sd([100 * r["dev"][k] for r in runs])
        test = mean_sd([100 * r["test"][k] for r in runs])
        secs = seconds(statistics.mean(r["seconds"] for r in runs))
        out.append([runs[0]["title"], f"{size:,}", name, k, dev, test, secs, str(len(runs))])
    return out


def block_tasks(results: Path) -> str:
    return tasks_table(load(results, "tasks.json"))


BLOCKS = {  # name → (function of the results folder, the files it reads)
    "tasks": (block_tasks, ["tasks.json"]),
    "final": (block_final, ["final.json"]),
    "final_conll_types": (block_final_conll_types, ["final.json"]),
    "baselines": (block_baselines, ["baselines.json"]),
    "elmo_55min": (block_elmo_55min, ["finetune_wt2.json", "baselines.json"]),
    "small_data": (block_small_data, SMALL_FILES),
    "cr_small": (block_cr_small, ["transfer.json"]),
    "transfer": (block_transfer, ["transfer.json"]),
    "adapt_conll": (block_adapt_conll, ["adapt_conll.json", "baselines.json"]),
    "weak_inputs": (block_weak_inputs, ["finetune.json"]),
    "weak_inputs_long": (block_weak_inputs_long, ["finetune_long.json"]),
    "weak_inputs_finetuned_bilm": (block_weak_inputs_finetuned_bilm, ["finetune.json", "finetune_encoder.json"]),
    "bilm_perplexity": (block_bilm_perplexity, [b[1] for b in BILMS]),
    "gpu_check": (block_gpu_check, ["gpu_check.txt"]),
    "tokenizers": (block_tokenizers, ["bench_tokenizers.txt"]),
}


# ---------------------------------------------------------------------------------------------
# the page


def blocks_of(text: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of each generated block's body: the characters between the end of its
    start marker line and the beginning of its end marker line."""
    out, open_name, body_start, pos = [], None, 0, 0
    for lineno, line in enumerate(text.splitlines(keepends=True), 1):
        stripped = line.strip()
        start, end = START.fullmatch(stripped), END.fullmatch(stripped)
        if start:
            if open_name:
                raise PageError(f"line {lineno}: block {start['name']!r} starts inside block {open_name!r}")
            if start["name"] not in BLOCKS:
                raise PageError(f"line {lineno}: unknown block {start['name']!r} (known: {', '.join(BLOCKS)})")
            if any(name == start["name"] for name, _, _ in out):
                raise PageError(f"line {lineno}: block {start['name']!r} appears twice")
            open_name, body_start = start["name"], pos + len(line)
        elif end:
            if end["name"] != open_name:
                raise PageError(f"line {lineno}: end of block {end['name']!r} without its start")
            out.append((open_name, body_start, pos))
            open_name = None
        elif "<!-- generated:" in line or "<!-- end:" in line:
            raise PageError(f"line {lineno}: a marker must be a line of its own: {stripped!r}")
        pos += len(line)
    if open_name:
        raise PageError(f"block {open_name!r} has no end marker")
    missing = [name for name in BLOCKS if name not in {n for n, _, _ in out}]
    if missing:
        raise PageError(f"no block {', '.join(missing)} on the page")
    return out


def body(name: str, results: Path) -> str:
    """What the page holds between the markers of block ``name``: a blank line, the table, a blank line."""
    make, files = BLOCKS[name]
    try:
        return "\n" + make(results).rstrip("\n") + "\n\n"
    except (KeyError, IndexError, TypeError, ValueError, statistics.StatisticsError) as e:
        where = ", ".join(f"results/{f}" for f in dict.fromkeys(files))
        raise PageError(f"block {name!r}: {where} lack what it needs ({type(e).__name__}: {e})") from None


def render(text: str, results: Path = RESULTS) -> str:
    """``text`` with the body of every generated block rewritten from ``results``."""
    out, last = [], 0
    for name, start, end in blocks_of(text):
        out += [text[last:start], body(name, results)]
        last = end
    return "".join(out) + text[last:]


def check(page: Path = PAGE, results: Path = RESULTS) -> str | None:
    """None when ``page`` is what ``render`` would write, else a one-line message naming the first
    stale block (or what is wrong with the page or the results)."""
    try:
        text = page.read_text(encoding="utf-8")
        for name, start, end in blocks_of(text):
            if text[start:end] != body(name, results):
                files = ", ".join(f"results/{f}" for f in dict.fromkeys(BLOCKS[name][1]))
                return f"{page.name}: block {name!r} is stale against {files}: run python scripts/benchmarks_page.py"
    except OSError as e:
        return f"{page}: cannot read ({e.strerror})"
    except PageError as e:
        return f"{page.name}: {e}"
    return None


def rewrite(page: Path = PAGE, results: Path = RESULTS) -> bool:
    """Rewrite the generated blocks of ``page`` in place; True when anything changed."""
    text = page.read_text(encoding="utf-8")
    new = render(text, results)
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only check that the page is up to date (exit 1 if not)")
    p.add_argument("--page", type=Path, default=PAGE, help=f"the page (default {PAGE.relative_to(ROOT)})")
    p.add_argument("--results", type=Path, default=RESULTS, help="the results folder (default results/)")
    args = p.parse_args(argv)
    if args.check:
        problem = check(args.page, args.results)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    try:
        changed = rewrite(args.page, args.results)
    except (OSError, PageError) as e:
        print(f"{args.page.name}: {e}", file=sys.stderr)
        return 1
    print(f"{args.page}: {'rewritten' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
