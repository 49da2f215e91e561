"""Benchmark: the ONNX export of task models (`elmo export --format onnx MODEL OUT --int8`): parity
with PyTorch, each runtime's dev score and speed, measured by the export itself in one run.

    .venv/bin/python bench/onnx_task_export.py                     # the `make repro` models
    .venv/bin/python bench/onnx_task_export.py --ner-dev ../shared/data/conll2003/valid.txt

For each model (``models/ner``, ``models/sentiment`` from ``make repro``) it exports fp32 (parity)
and int8 (its dev score; ``--int8-max-drop 1`` so that a drop is reported, not refused) into a
temporary directory and prints, from ``onnx.json``: the largest output difference, the agreement of
the predictions (tokens for the tagger, examples for the classifier), the dev score of PyTorch, the
fp32 graph and int8, and the speed of each graph against PyTorch's predict on up to 500 dev
examples (median of 3). The NER model's dev file can be any CoNLL file with its tags (CoNLL-2003's
validation set: 3,250 sentences, the first 2,000 checked). The CPU's features are printed beside.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ner", default=str(REPO / "models" / "ner"))
    ap.add_argument("--ner-dev", default=None, help="a CoNLL file to check the NER model on (default: its own dev)")
    ap.add_argument("--sentiment", default=str(REPO / "models" / "sentiment"))
    args = ap.parse_args()
    from pipeline.cpu import features_line
    from pipeline.tasks.export_onnx import export_task_onnx

    print(f"# {features_line()}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, dev in (("ner", args.ner, args.ner_dev), ("sentiment", args.sentiment, None)):
            r = export_task_onnx(model, Path(tmp) / name, int8=True, int8_max_drop=1.0, dev=dev, log=lambda m: None)
            d = r["dev"]
            print(f"{name}: checked on {r['checked_on']}")
            print(f"  max abs diff of the outputs ({r['output']}): {r['max_abs_diff']:.2e}")
            print(f"  predictions agree with PyTorch: fp32 {r['agreement']:.2%}, int8 {r['int8_agreement']:.2%}")
            print(f"  dev {d['metric']}: pytorch {d['pytorch']:.4f}  onnx fp32 {d['onnx_fp32']:.4f}  "
                  f"onnx int8 {d['onnx_int8']:.4f}")  # fmt: skip
            s, v = r["seconds"], r["speed_vs_pytorch"]
            print(f"  {r['speed_examples']} examples: pytorch {r['speed_examples'] / s['pytorch']:.0f}/s, "
                  f"onnx fp32 {r['speed_examples'] / s['onnx_fp32']:.0f}/s ({v['onnx_fp32']:.2f}x), "
                  f"onnx int8 {r['speed_examples'] / s['onnx_int8']:.0f}/s ({v['onnx_int8']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
