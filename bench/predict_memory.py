"""Peak memory of `elmo predict` for 10k vs 100k input lines: streaming keeps it flat.

    python bench/predict_memory.py [--model models/ner] [--small 10000] [--large 100000]

Runs `elmo predict` on two generated files (sentences from the NER sample) in separate
processes, reads each child's peak RSS (resource.getrusage), and prints both and their ratio
(about 1 when memory does not grow with the input). Needs `make repro` (models/ner) first.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MB of the child, seconds) for one command run alone."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(after, before) / 1024, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "models" / "ner"))
    p.add_argument("--small", type=int, default=10_000)
    p.add_argument("--large", type=int, default=100_000)
    args = p.parse_args()
    conll = (REPO / "data" / "samples" / "ner" / "test.conll").read_text().split("\n\n")
    sents = [" ".join(line.split()[0] for line in block.splitlines()) for block in conll if block.strip()]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        # the smaller run first: ru_maxrss of children is a running maximum
        for n in (args.small, args.large):
            f = Path(d) / f"in{n}.txt"
            f.write_text("".join(sents[i % len(sents)] + "\n" for i in range(n)))
            cmd = [
                sys.executable,
                "-m",
                "pipeline.cli",
                "-q",
                "predict",
                str(f),
                "--model",
                args.model,
                "--output",
                str(Path(d) / f"out{n}.jsonl"),
            ]
            results[n] = peak_rss_mb(cmd)
            print(
                f"{n:>7} lines: peak RSS {results[n][0]:.0f} MB, {results[n][1]:.1f} s "
                f"({n / results[n][1]:.0f} lines/s)   command: {' '.join(cmd[1:])}"
            )
    ratio = results[args.large][0] / results[args.small][0]
    print(f"peak RSS ratio {args.large} / {args.small} lines: {ratio:.2f} (1.00 = flat)")


if __name__ == "__main__":
    main()
