"""Benchmark: the ONNX export of an encoder in ONNX Runtime (fp32 and int8) against PyTorch, on
the same sentences in the same run.

    .venv/bin/python bench/onnx_speed.py                          # the released `small` shapes
    .venv/bin/python bench/onnx_speed.py --elmo original --sentences 200

The encoder is the released ELMo shape (random weights, cells and projections clipped at 3, as
written by bench/embed_throughput.py), imported, then exported with `elmo export --format onnx`
(fp32) and `--int8`. Each is timed on the first ``--sentences`` PTB valid sentences through
``Encoder.embed`` (sorted batches of 4,096 tokens; PyTorch fp32 with the token cache cold, as
ONNX Runtime has none), medians of ``--repeats``; one sentence at a time, the median over 100.
Prints sentences/s, the ratio to PyTorch, and int8's lowest cosine against fp32 per layer. The
CPU's features are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from embed_throughput import PTB_VALID, elmo_files  # noqa: E402

from pipeline.cpu import median_seconds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--elmo", default="small", choices=["small", "medium", "original"])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from pipeline.cpu import features_line
    from pipeline.elmo_format import import_elmo
    from pipeline.encoder import Encoder
    from pipeline.export_onnx import compare, export_onnx

    print(features_line())
    lines = [line.split() for line in PTB_VALID.read_text().splitlines() if line.strip()]
    sample = lines[: args.sentences]
    print(f"`{args.elmo}` shapes, the first {len(sample)} PTB valid sentences ({sum(map(len, sample)):,} tokens)")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        source = import_elmo(*elmo_files(args.elmo, tmp), tmp / "enc")
        for name, int8 in (("fp32", False), ("int8", True)):
            export_onnx(source, tmp / name, int8=int8, int8_min_cosine=0.0, log=lambda m: None)
        encoders = {
            "PyTorch fp32": Encoder.from_pretrained(source, cache_size=0),
            "ONNX Runtime fp32": Encoder.from_pretrained(tmp / "fp32"),
            "ONNX Runtime int8": Encoder.from_pretrained(tmp / "int8"),
        }
        reference = encoders["PyTorch fp32"].embed(sample[:300])
        base = None
        print(
            "| runtime | sent/s | of PyTorch | one sentence, ms | lowest cosine per layer vs PyTorch (300 sentences) |"
        )
        print("|---|---|---|---|---|")
        for name, enc in encoders.items():
            enc.embed(sample[:20])  # warm
            rate = len(sample) / median_seconds(lambda: enc.embed(sample), args.repeats)
            one = statistics.median(median_seconds(lambda s=s: enc.embed([s]), 1) for s in sample[:100]) * 1000
            base = base or rate
            cos = ", ".join(f"{c:.5f}" for c in compare(reference, enc.embed(sample[:300]))["lowest_cosine"])
            print(f"| {name} | {rate:,.1f} | {rate / base:.2f}x | {one:.1f} | {cos} |", flush=True)


if __name__ == "__main__":
    main()
