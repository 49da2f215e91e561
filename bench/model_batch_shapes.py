"""Benchmark: a task model's `predict` rate by batch shape, the model alone (no HTTP): what a
served batch costs against the offline one.

    .venv/bin/python bench/model_batch_shapes.py                      # models/sentiment, SST-2 dev
    .venv/bin/python bench/model_batch_shapes.py --model models/ner --texts my.txt

On 2,000 texts (``--texts``, one per line; default the SST-2 dev sentences, repeated): all at once
with all threads (the offline rate), then batches of 32 and 8 in arrival order (mixed lengths, as
32 or 8 clients form them), one text at a time, and batches of 32 and 64 after sorting by length;
the batched rows with one thread (the server's model thread on 2 cores). Texts/s, medians of 3,
each against the offline rate. The CPU's features are printed beside.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SST2_DEV = REPO.parent / "shared" / "data" / "sst" / "sst2_dev.tsv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "sentiment"))
    ap.add_argument("--texts", default=None)
    args = ap.parse_args()
    import torch

    from pipeline.cpu import features_line
    from pipeline.tasks.models import load_task_model

    model = load_task_model(args.model)
    if args.texts:
        lines = [line for line in Path(args.texts).read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        lines = [row.split("\t")[1] for row in SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]]
    texts = [model.tokenize(t) for t in (lines * (2000 // len(lines) + 1))[:2000]]
    model.records(texts[:64])  # warm
    all_threads = torch.get_num_threads()

    def rate(rows: list, batch: int, threads: int) -> float:
        torch.set_num_threads(threads)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            for i in range(0, len(rows), batch):
                model.records(rows[i : i + batch])
            times.append(time.perf_counter() - start)
        return len(rows) / statistics.median(times)

    print(f"# {features_line()}; {args.model}, {len(texts)} texts")
    offline = rate(texts, len(texts), all_threads)
    print(f"all at once, {all_threads} threads: {offline:,.0f} texts/s (offline)")
    by_length = sorted(texts, key=len)
    for name, rows, batch in (
        ("arrival order, batches of 32", texts, 32),
        ("arrival order, batches of 8", texts, 8),
        ("one at a time", texts[:300], 1),
        ("sorted by length, batches of 32", by_length, 32),
        ("sorted by length, batches of 64", by_length, 64),
    ):
        r = rate(rows, batch, 1)
        print(f"{name}, 1 thread: {r:,.0f} texts/s ({r / offline:.0%} of offline)")


if __name__ == "__main__":
    main()
