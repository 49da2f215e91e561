"""DVC stage `export`: the best biLM as a self-contained encoder directory with a model card."""

import check_env  # noqa: F401  (first: a clear error outside the project's environment)

# isort: split
import argparse
from pathlib import Path

from pipeline.config import load_params
from pipeline.errors import run_main
from pipeline.export import export_encoder
from pipeline.io import check_arg_outputs, read_json_output


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--model", default="models/pretrain/best")
    p.add_argument("--prepared", default="data/prepared")
    p.add_argument("--test-metrics", default="metrics/evaluate_lm.json")
    p.add_argument("--out", default="models/encoder")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    check_arg_outputs(args)
    params = load_params(args.params)
    test = read_json_output(args.test_metrics, "test metrics") if Path(args.test_metrics).is_file() else None
    out = export_encoder(args.model, args.out, args.prepared, params.export.with_softmax, test, params.presets)
    if not args.quiet:
        print(f"export: encoder written to {out} (its README.md is the model card)")


if __name__ == "__main__":
    run_main(main)
